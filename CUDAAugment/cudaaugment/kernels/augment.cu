// cudaaugment: one thread per output voxel (paper section IV).
//
// Each thread maps its output voxel to input coordinates (p = A o + b), tests occlusion before
// any fetch, samples the image (texture hardware trilinear or software trilinear), adds
// counter-based Gaussian noise (Philox4x32-10 keyed by the example's seed, counter = voxel
// index: no per-voxel RNG state), applies the window, and point-samples the label map.
//
// Conventions are those of cudaaugment/params.py: arrays [z][y][x] = [k][j][i], C order;
// p = (p0, p1, p2) in that axis order; outside the input the image reads image_fill and the
// label reads label_fill; the image is interpolated across the edge (scipy "grid-constant").
//
// Plain CUDA C++ with extern "C" entry points, no includes: it compiles with nvcc and loads
// with cupy.RawModule (NVRTC) from the same source.

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

struct AffineArgs {
    float a00, a01, a02, a10, a11, a12, a20, a21, a22, b0, b1, b2;
};

// Philox4x32-10 (Salmon et al. 2011, Random123); returns the first two 32-bit outputs.
__device__ __forceinline__ void philox4x32_10(unsigned int c0, unsigned int c1,
                                              unsigned int k0, unsigned int k1,
                                              unsigned int* r0, unsigned int* r1) {
    unsigned int c2 = 0u, c3 = 0u;
    #pragma unroll
    for (int round = 0; round < 10; ++round) {
        unsigned long long p0 = (unsigned long long)PHILOX_M0 * c0;
        unsigned long long p1 = (unsigned long long)PHILOX_M1 * c2;
        unsigned int hi0 = (unsigned int)(p0 >> 32), lo0 = (unsigned int)p0;
        unsigned int hi1 = (unsigned int)(p1 >> 32), lo1 = (unsigned int)p1;
        unsigned int n0 = hi1 ^ c1 ^ k0;
        unsigned int n2 = hi0 ^ c3 ^ k1;
        c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
        k0 += PHILOX_W0; k1 += PHILOX_W1;
    }
    *r0 = c0; *r1 = c1;
}

// Standard normal from the voxel's counter (Box-Muller on 24-bit uniforms; u1 in (0, 1]).
__device__ __forceinline__ float voxel_normal(unsigned long long index, unsigned int seed_lo,
                                              unsigned int seed_hi) {
    unsigned int r0, r1;
    philox4x32_10((unsigned int)index, (unsigned int)(index >> 32), seed_lo, seed_hi, &r0, &r1);
    float u1 = (float)((r0 >> 8) + 1u) * (1.0f / 16777216.0f);
    float u2 = (float)(r1 >> 8) * (1.0f / 16777216.0f);
    return sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
}

__device__ __forceinline__ float fetch(const float* __restrict__ image, int z, int y, int x,
                                       int d, int h, int w, float fill) {
    if (z < 0 || y < 0 || x < 0 || z >= d || y >= h || x >= w) return fill;
    return image[((long long)z * h + y) * w + x];
}

// Software trilinear with the input extended by `fill` (bit-for-bit independent of texture
// hardware, whose interpolation weights have 8 fractional bits).
__device__ float trilinear(const float* __restrict__ image, float p0, float p1, float p2,
                           int d, int h, int w, float fill) {
    if (!(p0 > -1.0f && p1 > -1.0f && p2 > -1.0f && p0 < (float)d && p1 < (float)h &&
          p2 < (float)w)) {
        return fill;  // also catches NaN
    }
    float f0 = floorf(p0), f1 = floorf(p1), f2 = floorf(p2);
    int z = (int)f0, y = (int)f1, x = (int)f2;
    float t0 = p0 - f0, t1 = p1 - f1, t2 = p2 - f2;
    float c00 = fetch(image, z, y, x, d, h, w, fill) * (1.0f - t2) +
                fetch(image, z, y, x + 1, d, h, w, fill) * t2;
    float c01 = fetch(image, z, y + 1, x, d, h, w, fill) * (1.0f - t2) +
                fetch(image, z, y + 1, x + 1, d, h, w, fill) * t2;
    float c10 = fetch(image, z + 1, y, x, d, h, w, fill) * (1.0f - t2) +
                fetch(image, z + 1, y, x + 1, d, h, w, fill) * t2;
    float c11 = fetch(image, z + 1, y + 1, x, d, h, w, fill) * (1.0f - t2) +
                fetch(image, z + 1, y + 1, x + 1, d, h, w, fill) * t2;
    float c0 = c00 * (1.0f - t1) + c01 * t1;
    float c1 = c10 * (1.0f - t1) + c11 * t1;
    return c0 * (1.0f - t0) + c1 * t0;
}

template <typename L, bool HAS_LABEL>
__device__ void augment_impl(
    const float* __restrict__ image, const L* __restrict__ label_in,
    cudaTextureObject_t tex, int use_texture, int in_d, int in_h, int in_w,
    float* __restrict__ image_out, L* __restrict__ label_out, int out_d, int out_h, int out_w,
    AffineArgs m, float image_fill, int label_fill,
    int occ_k0, int occ_k1, float occ_value,
    float sigma, unsigned int seed_lo, unsigned int seed_hi,
    int do_window, float win_lo, float win_scale) {
    long long n = (long long)out_d * out_h * out_w;
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= n) return;
    int i = (int)(idx % out_w);
    int j = (int)((idx / out_w) % out_h);
    int k = (int)(idx / ((long long)out_w * out_h));
    float fk = (float)k, fj = (float)j, fi = (float)i;
    float p0 = m.a00 * fk + m.a01 * fj + m.a02 * fi + m.b0;
    float p1 = m.a10 * fk + m.a11 * fj + m.a12 * fi + m.b1;
    float p2 = m.a20 * fk + m.a21 * fj + m.a22 * fi + m.b2;

    float value;
    // Occluded rows are [occ_k0, occ_k1): ceil(start) and ceil(start + height), computed on the
    // host in double precision so every backend occludes exactly the same rows.
    bool occluded = k >= occ_k0 && k < occ_k1;
    if (occluded) {
        value = occ_value;  // tested before the fetch: an occluded voxel reads no memory
    } else if (use_texture) {
        value = tex3D<float>(tex, p2 + 0.5f, p1 + 0.5f, p0 + 0.5f);
    } else {
        value = trilinear(image, p0, p1, p2, in_d, in_h, in_w, image_fill);
    }
    if (sigma > 0.0f) value += sigma * voxel_normal((unsigned long long)idx, seed_lo, seed_hi);
    if (do_window) value = fminf(fmaxf((value - win_lo) * win_scale, 0.0f), 1.0f);
    image_out[idx] = value;

    if (HAS_LABEL) {
        int z = (int)floorf(p0 + 0.5f), y = (int)floorf(p1 + 0.5f), x = (int)floorf(p2 + 0.5f);
        bool inside = p0 > -1.0f && p1 > -1.0f && p2 > -1.0f && p0 < (float)in_d &&
                      p1 < (float)in_h && p2 < (float)in_w &&
                      z >= 0 && y >= 0 && x >= 0 && z < in_d && y < in_h && x < in_w;
        label_out[idx] = inside ? label_in[((long long)z * in_h + y) * in_w + x] : (L)label_fill;
    }
}

#define AUGMENT_ARGS(L)                                                                       \
    const float* __restrict__ image, const L* __restrict__ label_in,                          \
    cudaTextureObject_t tex, int use_texture, int in_d, int in_h, int in_w,                   \
    float* __restrict__ image_out, L* __restrict__ label_out, int out_d, int out_h,           \
    int out_w, float a00, float a01, float a02, float a10, float a11, float a12, float a20,   \
    float a21, float a22, float b0, float b1, float b2, float image_fill, int label_fill,     \
    int occ_k0, int occ_k1, float occ_value, float sigma, unsigned int seed_lo,               \
    unsigned int seed_hi, int do_window, float win_lo, float win_scale

#define AUGMENT_CALL(L, HAS)                                                                  \
    AffineArgs m = {a00, a01, a02, a10, a11, a12, a20, a21, a22, b0, b1, b2};                 \
    augment_impl<L, HAS>(image, label_in, tex, use_texture, in_d, in_h, in_w, image_out,      \
                         label_out, out_d, out_h, out_w, m, image_fill, label_fill,           \
                         occ_k0, occ_k1, occ_value, sigma, seed_lo, seed_hi,                  \
                         do_window, win_lo, win_scale)

// Image only (label pointers are ignored; pass any uint8 arrays).
extern "C" __global__ void augment_image(AUGMENT_ARGS(unsigned char)) {
    AUGMENT_CALL(unsigned char, false);
}
extern "C" __global__ void augment_u8(AUGMENT_ARGS(unsigned char)) {
    AUGMENT_CALL(unsigned char, true);
}
extern "C" __global__ void augment_i8(AUGMENT_ARGS(signed char)) {
    AUGMENT_CALL(signed char, true);
}
extern "C" __global__ void augment_i16(AUGMENT_ARGS(short)) { AUGMENT_CALL(short, true); }
extern "C" __global__ void augment_u16(AUGMENT_ARGS(unsigned short)) {
    AUGMENT_CALL(unsigned short, true);
}
extern "C" __global__ void augment_i32(AUGMENT_ARGS(int)) { AUGMENT_CALL(int, true); }
extern "C" __global__ void augment_u32(AUGMENT_ARGS(unsigned int)) {
    AUGMENT_CALL(unsigned int, true);
}
