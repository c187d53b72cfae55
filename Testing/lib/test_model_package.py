"""Model packages: safetensors + JSON card + SHA-256; tampered or mismatched packages are refused."""

import json
import pickle

import numpy as np
import pytest
import torch

from organseglib.errors import ModelPackageError, OutputExistsError
from organseglib.model_package import (CARD_FILE, WEIGHTS_FILE, ModelCard, default_classes, find_model_packages,
                                       load_model_package, read_card, resolve_model, save_model_package)
from organseglib.network import build_network

WIDTH = 0.0625


def _card(**kw):
    fields = dict(name="tiny", width=WIDTH, tile_shape=(32, 24, 16), training_data="random weights (test)")
    fields.update(kw)
    return ModelCard(**fields)


@pytest.fixture()
def package(tmp_path):
    torch.manual_seed(0)
    model = build_network(width=WIDTH).eval()
    return save_model_package(tmp_path / "tiny", model, _card()), model


def test_round_trip_gives_the_same_network_and_card(package):
    folder, model = package
    assert sorted(p.name for p in folder.iterdir()) == [CARD_FILE, WEIGHTS_FILE]
    loaded, card = load_model_package(folder)
    assert card == _card(created=card.created)
    assert card.tile_shape == (32, 24, 16) and card.channel_values == (0, 1, 2, 3, 4, 5)
    x = torch.rand(1, 1, 16, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert not loaded.training


def test_card_json_holds_sha256_and_organ_classes(package):
    folder, _ = package
    data = json.loads((folder / CARD_FILE).read_text())
    assert data["format"] == "organseg-model-package" and data["format_version"] == 1
    import hashlib
    assert data["weights"]["sha256"] == hashlib.sha256((folder / WEIGHTS_FILE).read_bytes()).hexdigest()
    lungs = next(c for c in data["classes"] if c["key"] == "lungs")
    assert lungs["value"] == 3 and lungs["name"] == "Lungs" and "39607008" in lungs["terminology"]
    assert data["spacing_mm"] == 3.0 and data["window_hu"] == [-1000.0, 1000.0]
    assert {"architecture", "width", "num_classes", "in_channels", "training_data", "provenance", "version",
            "created"} <= set(data)


def test_tampered_weights_are_refused(package):
    folder, _ = package
    raw = bytearray((folder / WEIGHTS_FILE).read_bytes())
    raw[-10] ^= 0xFF  # one flipped byte in the last tensor
    (folder / WEIGHTS_FILE).write_bytes(bytes(raw))
    with pytest.raises(ModelPackageError, match="SHA-256 .* does not match .*modified or corrupted"):
        load_model_package(folder)


def test_truncated_weights_are_refused(package):
    folder, _ = package
    raw = (folder / WEIGHTS_FILE).read_bytes()
    (folder / WEIGHTS_FILE).write_bytes(raw[:-100])
    with pytest.raises(ModelPackageError, match="truncated"):
        load_model_package(folder)


def test_card_that_does_not_match_the_weights_is_refused(package):
    folder, _ = package
    data = json.loads((folder / CARD_FILE).read_text())
    data["width"] = 0.125  # same hash, other architecture
    (folder / CARD_FILE).write_text(json.dumps(data))
    with pytest.raises(ModelPackageError, match=r"model.safetensors.*do not match the card's network.*wrong shape"):
        load_model_package(folder)


def test_a_pickle_is_never_unpickled(tmp_path, package):
    """A pickle posing as weights (with a matching hash) fails the safetensors header, runs nothing."""
    folder, _ = package
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    payload = pickle.dumps(Evil())
    (folder / WEIGHTS_FILE).write_bytes(payload)
    data = json.loads((folder / CARD_FILE).read_text())
    import hashlib
    data["weights"].update(sha256=hashlib.sha256(payload).hexdigest(), bytes=len(payload))
    (folder / CARD_FILE).write_text(json.dumps(data))
    with pytest.raises(ModelPackageError, match="not a readable safetensors file"):
        load_model_package(folder)
    assert not marker.exists()


@pytest.mark.parametrize("edit, match", [
    (lambda d: d.update(format_version=99), "format_version 99 is not supported"),
    (lambda d: d.update(format="other"), "'format' must be"),
    (lambda d: d.pop("weights"), "missing 'weights'"),
    (lambda d: d.update(tile_shape=[30, 24, 16]), "tile_shape.*multiples of 8"),
    (lambda d: d["classes"].pop(), "channels 0..5"),
])
def test_bad_cards_are_refused_with_the_field_named(package, edit, match):
    folder, _ = package
    data = json.loads((folder / CARD_FILE).read_text())
    edit(data)
    (folder / CARD_FILE).write_text(json.dumps(data))
    with pytest.raises(ModelPackageError, match=match):
        load_model_package(folder)


def test_missing_parts_are_named(tmp_path, package):
    folder, _ = package
    with pytest.raises(ModelPackageError, match="not a folder"):
        load_model_package(tmp_path / "nothing")
    (folder / WEIGHTS_FILE).unlink()
    with pytest.raises(ModelPackageError, match="model.safetensors.*does not exist"):
        load_model_package(folder)
    (folder / CARD_FILE).unlink()
    with pytest.raises(ModelPackageError, match="card.json.*does not exist"):
        read_card(folder)


def test_save_is_atomic_and_refuses_to_overwrite(tmp_path, package):
    folder, model = package
    before = (folder / WEIGHTS_FILE).read_bytes()
    with pytest.raises(OutputExistsError):
        save_model_package(folder, model, _card())
    other = build_network(width=WIDTH)
    save_model_package(folder, other, _card(version="2"), overwrite=True)
    assert read_card(folder)[0].version == "2" and (folder / WEIGHTS_FILE).read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]  # no temp folders left behind


def test_saving_a_model_that_does_not_fit_the_card_fails_and_leaves_nothing(tmp_path):
    with pytest.raises(ModelPackageError, match="do not match"):
        save_model_package(tmp_path / "bad", build_network(width=0.125), _card())
    assert list(tmp_path.iterdir()) == []


def test_find_and_resolve_packages(tmp_path, package, monkeypatch):
    folder, _ = package
    monkeypatch.setenv("ORGANSEG_MODELS", str(tmp_path))
    assert folder in find_model_packages()
    assert find_model_packages([folder]) == [folder]  # a package path itself
    assert resolve_model("tiny") == folder and resolve_model(str(folder)) == folder
    with pytest.raises(ModelPackageError, match="neither a folder nor a known package name"):
        resolve_model("no-such-model")


def test_default_classes_follow_the_organ_table():
    classes = default_classes()
    assert [c["channel"] for c in classes] == list(range(6))
    assert [c["key"] for c in classes] == ["background", "liver", "bladder", "lungs", "kidneys", "bone"]
    assert np.allclose(classes[1]["color"], [0.867, 0.510, 0.396])


def test_card_fields_that_would_only_fail_later_are_refused_when_read():
    from organseglib.model_package import CARD_ARCHITECTURES, ModelCard
    from organseglib.network import ARCHITECTURES

    assert CARD_ARCHITECTURES == ARCHITECTURES
    for field_name, value in (("architecture", "unet"), ("in_channels", 2), ("spacing_mm", float("inf"))):
        with pytest.raises(ModelPackageError, match=field_name):
            ModelCard(name="m", **{field_name: value})


def _edit_card(folder, **changes):
    path = folder / "card.json"
    card = json.loads(path.read_text())
    card["weights"].update(changes)
    path.write_text(json.dumps(card))


def test_the_card_cannot_point_at_weights_outside_the_package_or_give_a_bad_size(tmp_path):
    from organseglib.model_package import load_model_package, save_model_package, ModelCard
    from organseglib.network import build_network

    model = build_network(width=0.0625)
    good = save_model_package(tmp_path / "good", model, ModelCard(name="m", width=0.0625))
    other = save_model_package(tmp_path / "other", model, ModelCard(name="m", width=0.0625))
    _edit_card(good, file="../other/model.safetensors")
    with pytest.raises(ModelPackageError, match="card's weights file"):
        load_model_package(good)
    _edit_card(good, file="model.safetensors", bytes="abc")
    with pytest.raises(ModelPackageError, match="must be an integer"):
        load_model_package(good)
    load_model_package(other)  # the untouched package still loads


def test_card_data_sources_and_weights_licence_round_trip(tmp_path):
    from organseglib.errors import ModelPackageError
    from organseglib.model_package import ModelCard, read_card, save_model_package
    from organseglib.network import build_network

    sources = [{"name": "ircad1_07", "licence": "CC BY-NC-ND 4.0", "labels": "hand-drawn"},
               {"name": "phantoms", "licence": "project (same as code)"}]
    card = ModelCard(name="real", width=0.0625, data_sources=sources,
                     weights_licence="non-commercial research use only")
    save_model_package(tmp_path / "m", build_network(width=0.0625), card)
    back, _ = read_card(tmp_path / "m")
    assert [d["name"] for d in back.data_sources] == ["ircad1_07", "phantoms"]
    assert back.weights_licence == "non-commercial research use only"
    with pytest.raises(ModelPackageError, match="licence"):
        ModelCard(name="x", data_sources=[{"name": "ircad1_07"}])
