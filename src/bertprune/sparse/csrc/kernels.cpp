// Sparse-weight × dense-activation kernels for bertprune's CPU inference engine.
//
// Layout: activations are transposed, X^T [K, T] (input features × tokens), so that one weight
// multiplies a contiguous run of tokens: the inner loop is a broadcast of the weight and fused
// multiply-adds over 16-token vectors. Outputs come out transposed too, Y^T [N, T]. Work is split
// into (row chunk × token tile) pieces over PyTorch's intra-op threads (at::parallel_for: one thread
// pool in the process, not a second OpenMP runtime); a token tile of 16·NV tokens keeps the rows of
// X^T it touches in L1/L2.
//
// Kernels
//   csr_f32   unstructured: CSR over output rows (int32 row pointers and column indices).
//   b4_f32    4x1 blocks: 4 output rows share each column, so one activation load feeds 4 rows.
//   csr_i8    int8: activations quantised per token to u8 (zero point 128), weights int8 per row
//             (scale per row), in groups of 4 consecutive inputs; AVX-512 VNNI vpdpbusd does a
//             4-long dot product per 32-bit lane (u8 × s8 → s32).
// Each has an AVX-512 version (chosen at run time when the CPU has it) and a portable one.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <cstdint>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

constexpr int kRowChunk = 32;

bool has_avx512() { return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"); }
bool has_vnni() { return has_avx512() && __builtin_cpu_supports("avx512vnni"); }

// Lanes of a 16-float vector that hold data when `rem` values are left (all 16, some, or none).
inline __mmask16 tail_mask(int64_t rem) {
  return rem >= 16 ? (__mmask16)0xFFFF : (rem > 0 ? (__mmask16)((1u << rem) - 1) : (__mmask16)0);
}

// ---------------------------------------------------------------- vector math (AVX-512)
// exp: Cephes' expf (range reduction by ln 2 in two parts, degree-6 polynomial, 2^n by scalef),
// about 1 ulp; inputs below -87.3 give exactly 0, as the libm exp does in fp32.
__attribute__((target("avx512f"))) inline __m512 exp512(__m512 x) {
  const __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3f), _CMP_GE_OQ);
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.3f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 y = _mm512_set1_ps(1.9875691500e-4f);
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
  y = _mm512_fmadd_ps(_mm512_mul_ps(y, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.f)));
  return _mm512_maskz_mov_ps(live, _mm512_scalef_ps(y, n));
}

// GELU with the exact erf form, 0.5·x·(1 + erf(x/√2)); erf by Abramowitz & Stegun 7.1.26
// (absolute error below 1.5e-7), the approximation PyTorch's own vectorised CPU erf uses.
__attribute__((target("avx512f"))) inline __m512 gelu512(__m512 x) {
  const __m512 z = _mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752f));
  const __m512 az = _mm512_abs_ps(z);
  const __m512 d = _mm512_fmadd_ps(az, _mm512_set1_ps(0.3275911f), _mm512_set1_ps(1.f));
  __m512 t = _mm512_rcp14_ps(d);  // 1/d: 14-bit estimate and one Newton step (a division costs ~4x more)
  t = _mm512_mul_ps(t, _mm512_fnmadd_ps(d, t, _mm512_set1_ps(2.f)));
  __m512 r = _mm512_set1_ps(1.061405429f);
  r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(-1.453152027f));
  r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(1.421413741f));
  r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(-0.284496736f));
  r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(0.254829592f));
  r = _mm512_mul_ps(r, t);
  const __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(az, az)));
  __m512 erf_abs = _mm512_fnmadd_ps(r, e, _mm512_set1_ps(1.f));  // erf(|z|)
  const __mmask16 neg = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __m512 erf = _mm512_mask_sub_ps(erf_abs, neg, _mm512_setzero_ps(), erf_abs);
  return _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.5f)), _mm512_add_ps(erf, _mm512_set1_ps(1.f)));
}

inline float gelu_scalar(float x) { return 0.5f * x * (1.f + std::erf(x * 0.70710678118654752f)); }

template <typename F>
void parallel_tiles(int64_t rows, int64_t T, int64_t tile, F&& fn) {
  const int64_t n_chunks = (rows + kRowChunk - 1) / kRowChunk;
  const int64_t n_tiles = (T + tile - 1) / tile;
  at::parallel_for(0, n_chunks * n_tiles, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      // Token-tile-major order: each thread walks all row chunks of one token slab before the next,
      // so the slab of activations (rows x tile floats) stays in L2 instead of streaming from L3.
      const int64_t t = i / n_chunks, c = i % n_chunks;
      fn(c * kRowChunk, std::min(rows, (c + 1) * kRowChunk), t * tile, std::min(tile, T - t * tile));
    }
  });
}

// Like parallel_tiles, for fp32 kernels reading rows of X^T [K, T]: each thread copies its current
// token slab into a packed [K, tile] buffer. Rows of X^T lie T floats apart, and with T a multiple
// of 1024 every row maps to the same few cache sets (4K aliasing), so a slab of 1536 rows thrashes
// L2 even though it would fit; packed rows are `tile` floats apart and do not collide.
template <typename F>
void parallel_tiles_packed(int64_t units, int64_t rows_per_unit, const float* xt, int64_t K, int64_t T, int64_t tile,
                           float* yt, F&& fn) {
  // Threads split the output rows (each keeps its share of the weights hot) and every thread walks
  // the token tiles in order, all of its row chunks per tile (the packed slab stays in L1/L2).
  const int64_t n_chunks = (units + kRowChunk - 1) / kRowChunk;
  const int64_t n_tiles = (T + tile - 1) / tile;
  at::parallel_for(0, n_chunks, 1, [&](int64_t cb, int64_t ce) {
    std::vector<float> xbuf(n_tiles > 1 ? K * tile : 0);
    for (int64_t t = 0; t < n_tiles; ++t) {
      const int64_t t0 = t * tile, tn = std::min(tile, T - t0);
      const float* xs = xt + t0;
      int64_t ldx = T;
      if (n_tiles > 1) {
        for (int64_t k = 0; k < K; ++k) std::memcpy(xbuf.data() + k * tile, xt + k * T + t0, tn * sizeof(float));
        xs = xbuf.data();
        ldx = tile;
      }
      for (int64_t c = cb; c < ce; ++c) {
        const int64_t u0 = c * kRowChunk, u1 = std::min(units, (c + 1) * kRowChunk);
        fn(u0, u1, t0, tn, xs, ldx, yt + u0 * rows_per_unit * T + t0, T);
      }
    }
  });
}

// ---------------------------------------------------------------- fp32, unstructured CSR
template <int NV>
__attribute__((target("avx512f,avx512bw"))) void csr_f32_avx512(const int32_t* rowptr, const int32_t* cols, const float* vals,
                                                                  const float* bias, int64_t n0, int64_t n1, int64_t tn,
                                                                  const float* xs, int64_t ldx, float* yo, int64_t ldy, bool gelu) {
  __mmask16 m[NV];
  for (int v = 0; v < NV; ++v) m[v] = tail_mask(tn - 16 * v);
  for (int64_t n = n0; n < n1; ++n) {
    __m512 acc[NV];
    const __m512 b = _mm512_set1_ps(bias ? bias[n] : 0.f);
    for (int v = 0; v < NV; ++v) acc[v] = b;
    for (int32_t j = rowptr[n]; j < rowptr[n + 1]; ++j) {
      const __m512 w = _mm512_set1_ps(vals[j]);
      const float* xr = xs + (int64_t)cols[j] * ldx;
      for (int v = 0; v < NV; ++v) acc[v] = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m[v], xr + 16 * v), acc[v]);
    }
    float* yr = yo + (n - n0) * ldy;
    if (gelu)  // the FFN's activation while the row is still in registers: no second pass over [N, T]
      for (int v = 0; v < NV; ++v) acc[v] = gelu512(acc[v]);
    for (int v = 0; v < NV; ++v) _mm512_mask_storeu_ps(yr + 16 * v, m[v], acc[v]);
  }
}

void csr_f32_portable(const float* xt, int64_t T, const int32_t* rowptr, const int32_t* cols, const float* vals,
                      const float* bias, float* yt, int64_t n0, int64_t n1, int64_t t0, int64_t tn, bool gelu) {
  for (int64_t n = n0; n < n1; ++n) {
    float* yr = yt + n * T + t0;
    const float b = bias ? bias[n] : 0.f;
    for (int64_t t = 0; t < tn; ++t) yr[t] = b;
    for (int32_t j = rowptr[n]; j < rowptr[n + 1]; ++j) {
      const float w = vals[j];
      const float* xr = xt + (int64_t)cols[j] * T + t0;
      for (int64_t t = 0; t < tn; ++t) yr[t] += w * xr[t];
    }
    if (gelu)
      for (int64_t t = 0; t < tn; ++t) yr[t] = gelu_scalar(yr[t]);
  }
}

// ---------------------------------------------------------------- fp32, 4x1 blocks
template <int NV>
__attribute__((target("avx512f,avx512bw"))) void b4_f32_avx512(const int32_t* browptr,
                                                                 const int32_t* bcols, const float* bvals, const float* bias,
                                                                 int64_t g0, int64_t g1, int64_t tn,
                                                                 const float* xs, int64_t ldx, float* yo, int64_t ldy, bool gelu) {
  __mmask16 m[NV];
  for (int v = 0; v < NV; ++v) m[v] = tail_mask(tn - 16 * v);
  for (int64_t g = g0; g < g1; ++g) {  // g: a group of 4 output rows
    __m512 acc[4][NV];
    for (int r = 0; r < 4; ++r) {
      const __m512 b = _mm512_set1_ps(bias ? bias[4 * g + r] : 0.f);
      for (int v = 0; v < NV; ++v) acc[r][v] = b;
    }
    for (int32_t j = browptr[g]; j < browptr[g + 1]; ++j) {
      const float* xr = xs + (int64_t)bcols[j] * ldx;
      __m512 x[NV];
      for (int v = 0; v < NV; ++v) x[v] = _mm512_maskz_loadu_ps(m[v], xr + 16 * v);
      for (int r = 0; r < 4; ++r) {
        const __m512 w = _mm512_set1_ps(bvals[4 * (int64_t)j + r]);
        for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(w, x[v], acc[r][v]);
      }
    }
    for (int r = 0; r < 4; ++r) {
      float* yr = yo + (4 * (g - g0) + r) * ldy;
      if (gelu)
        for (int v = 0; v < NV; ++v) acc[r][v] = gelu512(acc[r][v]);
      for (int v = 0; v < NV; ++v) _mm512_mask_storeu_ps(yr + 16 * v, m[v], acc[r][v]);
    }
  }
}

void b4_f32_portable(const float* xt, int64_t T, const int32_t* browptr, const int32_t* bcols, const float* bvals,
                     const float* bias, float* yt, int64_t g0, int64_t g1, int64_t t0, int64_t tn, bool gelu) {
  for (int64_t g = g0; g < g1; ++g) {
    for (int r = 0; r < 4; ++r) {
      float* yr = yt + (4 * g + r) * T + t0;
      const float b = bias ? bias[4 * g + r] : 0.f;
      for (int64_t t = 0; t < tn; ++t) yr[t] = b;
    }
    for (int32_t j = browptr[g]; j < browptr[g + 1]; ++j) {
      const float* xr = xt + (int64_t)bcols[j] * T + t0;
      for (int r = 0; r < 4; ++r) {
        const float w = bvals[4 * (int64_t)j + r];
        float* yr = yt + (4 * g + r) * T + t0;
        for (int64_t t = 0; t < tn; ++t) yr[t] += w * xr[t];
      }
    }
    if (gelu)
      for (int r = 0; r < 4; ++r)
        for (int64_t t = 0; t < tn; ++t) yt[(4 * g + r) * T + t0 + t] = gelu_scalar(yt[(4 * g + r) * T + t0 + t]);
  }
}

// ---------------------------------------------------------------- int8, groups of 4 inputs
// xq: [K/4, T, 4] u8 (quantised, zero point 128); sx: [T] per-token scales.
// gvals: int32 = 4 packed int8 weights of inputs 4c..4c+3; gcols: c.
template <int NV>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void csr_i8_avx512(
    const uint8_t* xq, const float* sx, int64_t T, const int32_t* growptr, const int32_t* gcols, const int32_t* gvals,
    const float* wscale, const int32_t* wsum, const float* bias, float* yt, int64_t n0, int64_t n1, int64_t t0, int64_t tn,
    bool gelu) {
  __mmask16 m[NV];
  for (int v = 0; v < NV; ++v) m[v] = tail_mask(tn - 16 * v);
  __m512 s[NV];
  for (int v = 0; v < NV; ++v) s[v] = _mm512_maskz_loadu_ps(m[v], sx + t0 + 16 * v);
  for (int64_t n = n0; n < n1; ++n) {
    __m512i acc[NV];
    for (int v = 0; v < NV; ++v) acc[v] = _mm512_setzero_si512();
    for (int32_t j = growptr[n]; j < growptr[n + 1]; ++j) {
      const __m512i w = _mm512_set1_epi32(gvals[j]);
      const uint8_t* xr = xq + ((int64_t)gcols[j] * T + t0) * 4;
      for (int v = 0; v < NV; ++v)
        acc[v] = _mm512_dpbusd_epi32(acc[v], _mm512_maskz_loadu_epi32(m[v], xr + 64 * v), w);
    }
    const __m512i zero_point = _mm512_set1_epi32(128 * wsum[n]);
    const __m512 ws = _mm512_set1_ps(wscale[n]);
    const __m512 b = _mm512_set1_ps(bias ? bias[n] : 0.f);
    float* yr = yt + n * T + t0;
    for (int v = 0; v < NV; ++v) {
      const __m512 q = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[v], zero_point));
      const __m512 y = _mm512_fmadd_ps(_mm512_mul_ps(q, ws), s[v], b);
      _mm512_mask_storeu_ps(yr + 16 * v, m[v], gelu ? gelu512(y) : y);
    }
  }
}

void csr_i8_portable(const uint8_t* xq, const float* sx, int64_t T, const int32_t* growptr, const int32_t* gcols,
                     const int32_t* gvals, const float* wscale, const int32_t* wsum, const float* bias, float* yt,
                     int64_t n0, int64_t n1, int64_t t0, int64_t tn, bool gelu) {
  for (int64_t n = n0; n < n1; ++n) {
    for (int64_t t = t0; t < t0 + tn; ++t) {
      int32_t acc = 0;
      for (int32_t j = growptr[n]; j < growptr[n + 1]; ++j) {
        const int8_t* w = reinterpret_cast<const int8_t*>(&gvals[j]);
        const uint8_t* x = xq + ((int64_t)gcols[j] * T + t) * 4;
        acc += (int32_t)x[0] * w[0] + (int32_t)x[1] * w[1] + (int32_t)x[2] * w[2] + (int32_t)x[3] * w[3];
      }
      const float y = (float)(acc - 128 * wsum[n]) * wscale[n] * sx[t] + (bias ? bias[n] : 0.f);
      yt[n * T + t] = gelu ? gelu_scalar(y) : y;
    }
  }
}

const float* opt_ptr(const c10::optional<torch::Tensor>& b) { return b.has_value() ? b->data_ptr<float>() : nullptr; }

}  // namespace

// ================================================================ entry points
torch::Tensor csr_f32(torch::Tensor xt, torch::Tensor rowptr, torch::Tensor cols, torch::Tensor vals,
                      c10::optional<torch::Tensor> bias, int64_t nv, bool portable, bool gelu) {
  TORCH_CHECK(xt.dim() == 2 && xt.is_contiguous() && xt.scalar_type() == torch::kFloat, "xt: contiguous float [K, T]");
  const int64_t N = rowptr.size(0) - 1, T = xt.size(1);
  auto yt = torch::empty({N, T}, xt.options());
  const float* x = xt.data_ptr<float>();
  const int32_t *rp = rowptr.data_ptr<int32_t>(), *c = cols.data_ptr<int32_t>();
  const float *w = vals.data_ptr<float>(), *b = opt_ptr(bias);
  float* y = yt.data_ptr<float>();
  const bool vec = !portable && has_avx512();
  const int64_t tile = vec ? 16 * nv : 64;
  parallel_tiles_packed(N, 1, x, xt.size(0), T, tile, y, [&](int64_t n0, int64_t n1, int64_t t0, int64_t tn, const float* xs,
                                                             int64_t ldx, float* yo, int64_t ldy) {
    if (!vec) return csr_f32_portable(x, T, rp, c, w, b, y, n0, n1, t0, tn, gelu);
    switch (nv) {
      case 2: return csr_f32_avx512<2>(rp, c, w, b, n0, n1, tn, xs, ldx, yo, ldy, gelu);
      case 4: return csr_f32_avx512<4>(rp, c, w, b, n0, n1, tn, xs, ldx, yo, ldy, gelu);
      case 8: return csr_f32_avx512<8>(rp, c, w, b, n0, n1, tn, xs, ldx, yo, ldy, gelu);
      default: TORCH_CHECK(false, "nv must be 2, 4 or 8");
    }
  });
  return yt;
}

torch::Tensor b4_f32(torch::Tensor xt, torch::Tensor browptr, torch::Tensor bcols, torch::Tensor bvals,
                     c10::optional<torch::Tensor> bias, int64_t nv, bool portable, bool gelu) {
  TORCH_CHECK(xt.dim() == 2 && xt.is_contiguous() && xt.scalar_type() == torch::kFloat, "xt: contiguous float [K, T]");
  const int64_t G = browptr.size(0) - 1, T = xt.size(1);
  auto yt = torch::empty({4 * G, T}, xt.options());
  const float* x = xt.data_ptr<float>();
  const int32_t *rp = browptr.data_ptr<int32_t>(), *c = bcols.data_ptr<int32_t>();
  const float *w = bvals.data_ptr<float>(), *b = opt_ptr(bias);
  float* y = yt.data_ptr<float>();
  const bool vec = !portable && has_avx512();
  const int64_t tile = vec ? 16 * nv : 64;
  parallel_tiles_packed(G, 4, x, xt.size(0), T, tile, y, [&](int64_t g0, int64_t g1, int64_t t0, int64_t tn, const float* xs,
                                                             int64_t ldx, float* yo, int64_t ldy) {
    if (!vec) return b4_f32_portable(x, T, rp, c, w, b, y, g0, g1, t0, tn, gelu);
    switch (nv) {
      case 2: return b4_f32_avx512<2>(rp, c, w, b, g0, g1, tn, xs, ldx, yo, ldy, gelu);
      case 4: return b4_f32_avx512<4>(rp, c, w, b, g0, g1, tn, xs, ldx, yo, ldy, gelu);
      default: TORCH_CHECK(false, "nv must be 2 or 4");
    }
  });
  return yt;
}

torch::Tensor csr_i8(torch::Tensor xq, torch::Tensor sx, torch::Tensor growptr, torch::Tensor gcols, torch::Tensor gvals,
                     torch::Tensor wscale, torch::Tensor wsum, c10::optional<torch::Tensor> bias, int64_t nv, bool portable,
                     bool gelu) {
  const int64_t N = growptr.size(0) - 1, T = xq.size(1);
  auto yt = torch::empty({N, T}, sx.options());
  const uint8_t* x = xq.data_ptr<uint8_t>();
  const float* s = sx.data_ptr<float>();
  const int32_t *rp = growptr.data_ptr<int32_t>(), *c = gcols.data_ptr<int32_t>(), *w = gvals.data_ptr<int32_t>();
  const float* ws = wscale.data_ptr<float>();
  const int32_t* wsm = wsum.data_ptr<int32_t>();
  const float* b = opt_ptr(bias);
  float* y = yt.data_ptr<float>();
  const bool vec = !portable && has_vnni();
  const int64_t tile = vec ? 16 * nv : 64;
  parallel_tiles(N, T, tile, [&](int64_t n0, int64_t n1, int64_t t0, int64_t tn) {
    if (!vec) return csr_i8_portable(x, s, T, rp, c, w, ws, wsm, b, y, n0, n1, t0, tn, gelu);
    switch (nv) {
      case 2: return csr_i8_avx512<2>(x, s, T, rp, c, w, ws, wsm, b, y, n0, n1, t0, tn, gelu);
      case 4: return csr_i8_avx512<4>(x, s, T, rp, c, w, ws, wsm, b, y, n0, n1, t0, tn, gelu);
      case 8: return csr_i8_avx512<8>(x, s, T, rp, c, w, ws, wsm, b, y, n0, n1, t0, tn, gelu);
      default: TORCH_CHECK(false, "nv must be 2, 4 or 8");
    }
  });
  return yt;
}

// Per-token dynamic quantisation from the transposed layout X^T [K, T] into [K/4, T, 4] u8.
// AVX-512: per-token maxima 16 tokens per vector; then 4 rows of 16 tokens become 16 int32 lanes
// holding each token's 4 bytes, one 64-byte store (the scalar loop wrote bytes 4 apart).
__attribute__((target("avx512f,avx512bw"))) void quantize_t_avx512(const float* x, int64_t T, uint8_t* q, int64_t c0, int64_t c1,
                                                                      const float* inv) {
  const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127), zp = _mm512_set1_epi32(128);
  for (int64_t c = c0; c < c1; ++c)
    for (int64_t t = 0; t < T; t += 16) {
      const __mmask16 m = tail_mask(T - t);
      const __m512 iv = _mm512_maskz_loadu_ps(m, inv + t);
      __m512i packed = _mm512_setzero_si512();
      for (int r = 0; r < 4; ++r) {
        const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + (4 * c + r) * T + t), iv);
        __m512i qi = _mm512_cvt_roundps_epi32(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);  // ties to even, as nearbyint
        qi = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(qi, lo), hi), zp);
        packed = _mm512_or_si512(packed, _mm512_slli_epi32(qi, 8 * r));
      }
      _mm512_mask_storeu_epi32(q + (c * T + t) * 4, m, packed);
    }
}

__attribute__((target("avx512f"))) void token_absmax_avx512(const float* x, int64_t K, int64_t T, float* s, int64_t t0, int64_t t1) {
  for (int64_t t = t0; t < t1; t += 16) {
    const __mmask16 m = tail_mask(t1 - t);
    __m512 mx = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; ++k) mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_maskz_loadu_ps(m, x + k * T + t)));
    _mm512_mask_storeu_ps(s + t, m, mx);
  }
}

std::vector<torch::Tensor> quantize_tokens_t(torch::Tensor xt) {
  TORCH_CHECK(xt.dim() == 2 && xt.is_contiguous() && xt.scalar_type() == torch::kFloat, "xt: contiguous float [K, T]");
  const int64_t K = xt.size(0), T = xt.size(1);
  TORCH_CHECK(K % 4 == 0, "K must be a multiple of 4");
  auto xq = torch::empty({K / 4, T, 4}, xt.options().dtype(torch::kUInt8));
  auto sx = torch::zeros({T}, xt.options());
  const float* x = xt.data_ptr<float>();
  uint8_t* q = xq.data_ptr<uint8_t>();
  float* s = sx.data_ptr<float>();
  const bool vec = has_avx512();
  if (vec) {
    at::parallel_for(0, (T + 15) / 16, 1, [&](int64_t b, int64_t e) { token_absmax_avx512(x, K, T, s, 16 * b, std::min(T, 16 * e)); });
  } else {
    for (int64_t k = 0; k < K; ++k) {  // column maxima, row by row (contiguous)
      const float* row = x + k * T;
      for (int64_t t = 0; t < T; ++t) s[t] = std::max(s[t], std::abs(row[t]));
    }
  }
  std::vector<float> inv(T);
  for (int64_t t = 0; t < T; ++t) {
    s[t] = s[t] > 0.f ? s[t] / 127.f : 1.f;
    inv[t] = 1.f / s[t];
  }
  at::parallel_for(0, K / 4, 8, [&](int64_t cb, int64_t ce) {
    if (vec) return quantize_t_avx512(x, T, q, cb, ce, inv.data());
    for (int64_t c = cb; c < ce; ++c)
      for (int r = 0; r < 4; ++r) {
        const float* row = x + (4 * c + r) * T;
        uint8_t* out = q + c * T * 4 + r;
        for (int64_t t = 0; t < T; ++t) {
          const int v = (int)std::nearbyint(row[t] * inv[t]);
          out[4 * t] = (uint8_t)(std::max(-127, std::min(127, v)) + 128);
        }
      }
  });
  return {xq, sx};
}

// y = LayerNorm(x + r) over the feature dimension of the transposed layout [H, T], per token.
// AVX-512: 16 tokens per vector, three passes over the [H, 16] slab (sum, centred squares,
// normalise), which stays in L1; an fp64 sum and the centred second pass keep the statistics accurate.
__attribute__((target("avx512f,avx512dq"))) void add_layernorm_avx512(const float* x, const float* r, const float* g, const float* bb,
                                                               float* y, int64_t H, int64_t T, int64_t t, float eps) {
  const __mmask16 m = tail_mask(T - t);
  __m512d sum_lo = _mm512_setzero_pd(), sum_hi = _mm512_setzero_pd();  // fp64 sums: a large common offset loses no digits
  for (int64_t h = 0; h < H; ++h) {
    const __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, x + h * T + t), _mm512_maskz_loadu_ps(m, r + h * T + t));
    _mm512_mask_storeu_ps(y + h * T + t, m, v);
    sum_lo = _mm512_add_pd(sum_lo, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
    sum_hi = _mm512_add_pd(sum_hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
  }
  const __m512d inv_h = _mm512_set1_pd(1.0 / (double)H);
  const __m512 mean = _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(_mm512_mul_pd(sum_lo, inv_h))),
                                         _mm512_cvtpd_ps(_mm512_mul_pd(sum_hi, inv_h)), 1);
  __m512 sq = _mm512_setzero_ps();
  for (int64_t h = 0; h < H; ++h) {
    const __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, y + h * T + t), mean);
    sq = _mm512_fmadd_ps(d, d, sq);
  }
  const __m512 var = _mm512_div_ps(sq, _mm512_set1_ps((float)H));
  const __m512 rstd = _mm512_div_ps(_mm512_set1_ps(1.f), _mm512_sqrt_ps(_mm512_add_ps(var, _mm512_set1_ps(eps))));
  for (int64_t h = 0; h < H; ++h) {
    const __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, y + h * T + t), mean), rstd);
    _mm512_mask_storeu_ps(y + h * T + t, m, _mm512_fmadd_ps(d, _mm512_set1_ps(g[h]), _mm512_set1_ps(bb[h])));
  }
}

torch::Tensor add_layernorm_t(torch::Tensor xt, torch::Tensor rt, torch::Tensor w, torch::Tensor b, double eps, bool portable) {
  TORCH_CHECK(xt.is_contiguous() && rt.is_contiguous() && xt.sizes() == rt.sizes(), "x, r: contiguous [H, T]");
  const int64_t H = xt.size(0), T = xt.size(1);
  auto yt = torch::empty_like(xt);
  const float *x = xt.data_ptr<float>(), *r = rt.data_ptr<float>(), *g = w.data_ptr<float>(), *bb = b.data_ptr<float>();
  float* y = yt.data_ptr<float>();
  if (!portable && has_avx512()) {
    at::parallel_for(0, (T + 15) / 16, 1, [&](int64_t ib, int64_t ie) {
      for (int64_t i = ib; i < ie; ++i) add_layernorm_avx512(x, r, g, bb, y, H, T, 16 * i, (float)eps);
    });
    return yt;
  }
  const int64_t tile = 64;
  at::parallel_for(0, (T + tile - 1) / tile, 1, [&](int64_t ib, int64_t ie) {
  for (int64_t t0 = ib * tile; t0 < std::min(T, ie * tile); t0 += tile) {
    const int64_t tn = std::min(tile, T - t0);
    double sum[64] = {0}, sq[64] = {0};
    for (int64_t h = 0; h < H; ++h) {
      const float* xr = x + h * T + t0;
      const float* rr = r + h * T + t0;
      float* yr = y + h * T + t0;
      for (int64_t t = 0; t < tn; ++t) {
        const float v = xr[t] + rr[t];
        yr[t] = v;
        sum[t] += v;
        sq[t] += (double)v * v;
      }
    }
    float mean[64], rstd[64];
    for (int64_t t = 0; t < tn; ++t) {
      const double m = sum[t] / H;
      mean[t] = (float)m;
      rstd[t] = (float)(1.0 / std::sqrt(std::max(sq[t] / H - m * m, 0.0) + eps));
    }
    for (int64_t h = 0; h < H; ++h) {
      float* yr = y + h * T + t0;
      for (int64_t t = 0; t < tn; ++t) yr[t] = (yr[t] - mean[t]) * rstd[t] * g[h] + bb[h];
    }
  }
  });
  return yt;
}

// ---------------------------------------------------------------- attention, feature-major
// Softmax attention read straight from the fused QKV output [3H, T] (rows: q, k, v, each head's
// head_dim rows together; columns: batch-major tokens) into the context [H, T], one (sequence,
// head, block of 64 queries) per task. The scores are built transposed, [keys, queries], so that
// the softmax over keys runs down columns with one query per vector lane: no horizontal
// reductions, no transposing copies, and the [S, 64] block of probabilities stays in L1/L2
// between the two products. PyTorch's path makes two batched GEMMs of 128x32x128 per head (too
// small for MKL to reach its peak) plus a separate softmax pass.
constexpr int64_t kAttnQueries = 64;

// Row j of the transposed scores: scale, add the key's mask, store, and keep each query's maximum.
__attribute__((target("avx512f"))) inline void attention_key_row(const __m512* acc, int64_t j, const float* mask, __m512 vscale,
                                                                 float* e, __m512* mx) {
  const __m512 add = _mm512_set1_ps(mask ? mask[j] : 0.f);
  for (int u = 0; u < 4; ++u) {
    const __m512 sc = _mm512_fmadd_ps(acc[u], vscale, add);
    _mm512_store_ps(e + j * kAttnQueries + 16 * u, sc);
    mx[u] = _mm512_max_ps(mx[u], sc);
  }
}

__attribute__((target("avx512f"))) void attention_block_avx512(
    const float* q, const float* k, const float* v, int64_t ld, int64_t S, int64_t d, int64_t i0,
    const float* mask, float scale, float* e, float* out) {
  const int64_t n = std::min(kAttnQueries, S - i0);
  __mmask16 lane[4];
  for (int u = 0; u < 4; ++u) lane[u] = tail_mask(n - 16 * u);
  const __m512 vscale = _mm512_set1_ps(scale);
  __m512 mx[4];
  for (int u = 0; u < 4; ++u) mx[u] = _mm512_set1_ps(-INFINITY);
  // 1. e[j][i] = scale · Σ_dd k[dd][j]·q[dd][i] + mask[j], four keys at a time (16 accumulators).
  int64_t j = 0;
  for (; j + 4 <= S; j += 4) {
    __m512 acc[4][4];
    for (int r = 0; r < 4; ++r)
      for (int u = 0; u < 4; ++u) acc[r][u] = _mm512_setzero_ps();
    for (int64_t dd = 0; dd < d; ++dd) {
      const float* qr = q + dd * ld + i0;
      const float* kr = k + dd * ld + j;
      __m512 qv[4];
      for (int u = 0; u < 4; ++u) qv[u] = _mm512_maskz_loadu_ps(lane[u], qr + 16 * u);
      for (int r = 0; r < 4; ++r) {
        const __m512 kb = _mm512_set1_ps(kr[r]);
        for (int u = 0; u < 4; ++u) acc[r][u] = _mm512_fmadd_ps(kb, qv[u], acc[r][u]);
      }
    }
    for (int r = 0; r < 4; ++r) attention_key_row(acc[r], j + r, mask, vscale, e, mx);
  }
  for (; j < S; ++j) {
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t dd = 0; dd < d; ++dd) {
      const __m512 kb = _mm512_set1_ps(k[dd * ld + j]);
      for (int u = 0; u < 4; ++u) acc[u] = _mm512_fmadd_ps(kb, _mm512_maskz_loadu_ps(lane[u], q + dd * ld + i0 + 16 * u), acc[u]);
    }
    attention_key_row(acc, j, mask, vscale, e, mx);
  }
  // 2. e ← exp(e − max) per query; the sums normalise the context at the end (one pass fewer).
  __m512 sum[4];
  for (int u = 0; u < 4; ++u) sum[u] = _mm512_setzero_ps();
  for (int64_t jj = 0; jj < S; ++jj)
    for (int u = 0; u < 4; ++u) {
      float* ep = e + jj * kAttnQueries + 16 * u;
      const __m512 x = exp512(_mm512_sub_ps(_mm512_load_ps(ep), mx[u]));
      _mm512_store_ps(ep, x);
      sum[u] = _mm512_add_ps(sum[u], x);
    }
  __m512 inv[4];
  for (int u = 0; u < 4; ++u) inv[u] = _mm512_div_ps(_mm512_set1_ps(1.f), sum[u]);
  // 3. out[dd][i] = Σ_j v[dd][j]·e[j][i] / sum[i], four features at a time.
  int64_t dd = 0;
  for (; dd + 4 <= d; dd += 4) {
    __m512 acc[4][4];
    for (int r = 0; r < 4; ++r)
      for (int u = 0; u < 4; ++u) acc[r][u] = _mm512_setzero_ps();
    for (int64_t jj = 0; jj < S; ++jj) {
      __m512 ev[4];
      for (int u = 0; u < 4; ++u) ev[u] = _mm512_load_ps(e + jj * kAttnQueries + 16 * u);
      for (int r = 0; r < 4; ++r) {
        const __m512 vb = _mm512_set1_ps(v[(dd + r) * ld + jj]);
        for (int u = 0; u < 4; ++u) acc[r][u] = _mm512_fmadd_ps(vb, ev[u], acc[r][u]);
      }
    }
    for (int r = 0; r < 4; ++r)
      for (int u = 0; u < 4; ++u) _mm512_mask_storeu_ps(out + (dd + r) * ld + i0 + 16 * u, lane[u], _mm512_mul_ps(acc[r][u], inv[u]));
  }
  for (; dd < d; ++dd) {
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t jj = 0; jj < S; ++jj) {
      const __m512 vb = _mm512_set1_ps(v[dd * ld + jj]);
      for (int u = 0; u < 4; ++u) acc[u] = _mm512_fmadd_ps(vb, _mm512_load_ps(e + jj * kAttnQueries + 16 * u), acc[u]);
    }
    for (int u = 0; u < 4; ++u) _mm512_mask_storeu_ps(out + dd * ld + i0 + 16 * u, lane[u], _mm512_mul_ps(acc[u], inv[u]));
  }
}

// The same block, one query at a time in plain C++ (machines without AVX-512, and the tests' twin).
void attention_block_portable(const float* q, const float* k, const float* v, int64_t ld, int64_t S, int64_t d, int64_t i0,
                              const float* mask, float scale, float* e, float* out) {
  const int64_t n = std::min(kAttnQueries, S - i0);
  for (int64_t i = i0; i < i0 + n; ++i) {
    float top = -INFINITY;
    for (int64_t j = 0; j < S; ++j) {
      float dot = 0.f;
      for (int64_t dd = 0; dd < d; ++dd) dot += k[dd * ld + j] * q[dd * ld + i];
      e[j] = dot * scale + (mask ? mask[j] : 0.f);
      top = std::max(top, e[j]);
    }
    float sum = 0.f;
    for (int64_t j = 0; j < S; ++j) sum += (e[j] = std::exp(e[j] - top));
    for (int64_t dd = 0; dd < d; ++dd) {
      float acc = 0.f;
      for (int64_t j = 0; j < S; ++j) acc += v[dd * ld + j] * e[j];
      out[dd * ld + i] = acc / sum;
    }
  }
}

torch::Tensor attention_t(torch::Tensor qkv, int64_t B, int64_t heads, c10::optional<torch::Tensor> mask, double scale, bool portable) {
  TORCH_CHECK(qkv.dim() == 2 && qkv.is_contiguous() && qkv.scalar_type() == torch::kFloat, "qkv: contiguous float [3 * hidden, tokens]");
  const int64_t T = qkv.size(1), H = qkv.size(0) / 3;
  TORCH_CHECK(qkv.size(0) == 3 * H && B > 0 && T % B == 0 && heads > 0 && H % heads == 0,
              "qkv: [3 * hidden, batch * seq] with hidden divisible by heads");
  const int64_t S = T / B, d = H / heads;
  const float* mk = nullptr;
  if (mask.has_value()) {
    TORCH_CHECK(mask->is_contiguous() && mask->numel() == T && mask->scalar_type() == torch::kFloat, "mask: contiguous float [B, S]");
    mk = mask->data_ptr<float>();
  }
  auto out = torch::empty({H, T}, qkv.options());
  const float* x = qkv.data_ptr<float>();
  float* y = out.data_ptr<float>();
  const bool vec = !portable && has_avx512();
  const int64_t blocks = (S + kAttnQueries - 1) / kAttnQueries;
  at::parallel_for(0, B * heads * blocks, 1, [&](int64_t tb, int64_t te) {
    float* e = static_cast<float*>(std::aligned_alloc(64, S * kAttnQueries * sizeof(float)));  // [S, 64] probabilities
    if (!e) throw std::bad_alloc();  // at::parallel_for rethrows it in the calling thread
    for (int64_t t = tb; t < te; ++t) {  // consecutive tasks share a head: its k and v stay in cache
      const int64_t blk = t % blocks, h = (t / blocks) % heads, b = t / (blocks * heads);
      const float* base = x + b * S;
      const float* q = base + (h * d) * T;
      const float* k = base + (H + h * d) * T;
      const float* v = base + (2 * H + h * d) * T;
      float* o = y + (h * d) * T + b * S;
      const float* m = mk ? mk + b * S : nullptr;
      if (vec) attention_block_avx512(q, k, v, T, S, d, blk * kAttnQueries, m, (float)scale, e, o);
      else attention_block_portable(q, k, v, T, S, d, blk * kAttnQueries, m, (float)scale, e, o);
    }
    std::free(e);
  });
  return out;
}

std::vector<bool> cpu_features() { return {has_avx512(), has_vnni()}; }

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("csr_f32", &csr_f32, "unstructured sparse weight (CSR) x X^T, fp32");
  m.def("b4_f32", &b4_f32, "4x1-block sparse weight x X^T, fp32");
  m.def("csr_i8", &csr_i8, "sparse int8 weight (groups of 4 inputs) x quantised X, VNNI");
  m.def("quantize_tokens_t", &quantize_tokens_t, "per-token u8 quantisation of X^T [K, T] into [K/4, T, 4]");
  m.def("add_layernorm_t", &add_layernorm_t, "LayerNorm(x + r) over dim 0 of [H, T]");
  m.def("attention_t", &attention_t, "softmax attention from the fused QKV [3H, T] to the context [H, T], feature-major");
  m.def("cpu_features", &cpu_features, "(avx512, avx512-vnni)");
}
