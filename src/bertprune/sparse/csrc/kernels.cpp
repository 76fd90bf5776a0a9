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
#include <cstring>
#include <vector>

namespace {

constexpr int kRowChunk = 32;

bool has_avx512() { return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"); }
bool has_vnni() { return has_avx512() && __builtin_cpu_supports("avx512vnni"); }

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
                                                                  const float* xs, int64_t ldx, float* yo, int64_t ldy) {
  __mmask16 m[NV];
  for (int v = 0; v < NV; ++v) {
    int64_t rem = tn - 16 * v;
    m[v] = rem >= 16 ? (__mmask16)0xFFFF : (rem > 0 ? (__mmask16)((1u << rem) - 1) : (__mmask16)0);
  }
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
    for (int v = 0; v < NV; ++v) _mm512_mask_storeu_ps(yr + 16 * v, m[v], acc[v]);
  }
}

void csr_f32_portable(const float* xt, int64_t T, const int32_t* rowptr, const int32_t* cols, const float* vals,
                      const float* bias, float* yt, int64_t n0, int64_t n1, int64_t t0, int64_t tn) {
  for (int64_t n = n0; n < n1; ++n) {
    float* yr = yt + n * T + t0;
    const float b = bias ? bias[n] : 0.f;
    for (int64_t t = 0; t < tn; ++t) yr[t] = b;
    for (int32_t j = rowptr[n]; j < rowptr[n + 1]; ++j) {
      const float w = vals[j];
      const float* xr = xt + (int64_t)cols[j] * T + t0;
      for (int64_t t = 0; t < tn; ++t) yr[t] += w * xr[t];
    }
  }
}

// ---------------------------------------------------------------- fp32, 4x1 blocks
template <int NV>
__attribute__((target("avx512f,avx512bw"))) void b4_f32_avx512(const int32_t* browptr,
                                                                 const int32_t* bcols, const float* bvals, const float* bias,
                                                                 int64_t g0, int64_t g1, int64_t tn,
                                                                 const float* xs, int64_t ldx, float* yo, int64_t ldy) {
  __mmask16 m[NV];
  for (int v = 0; v < NV; ++v) {
    int64_t rem = tn - 16 * v;
    m[v] = rem >= 16 ? (__mmask16)0xFFFF : (rem > 0 ? (__mmask16)((1u << rem) - 1) : (__mmask16)0);
  }
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
      for (int v = 0; v < NV; ++v) _mm512_mask_storeu_ps(yr + 16 * v, m[v], acc[r][v]);
    }
  }
}

void b4_f32_portable(const float* xt, int64_t T, const int32_t* browptr, const int32_t* bcols, const float* bvals,
                     const float* bias, float* yt, int64_t g0, int64_t g1, int64_t t0, int64_t tn) {
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
  }
}

// ---------------------------------------------------------------- int8, groups of 4 inputs
// xq: [K/4, T, 4] u8 (quantised, zero point 128); sx: [T] per-token scales.
// gvals: int32 = 4 packed int8 weights of inputs 4c..4c+3; gcols: c.
template <int NV>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void csr_i8_avx512(
    const uint8_t* xq, const float* sx, int64_t T, const int32_t* growptr, const int32_t* gcols, const int32_t* gvals,
    const float* wscale, const int32_t* wsum, const float* bias, float* yt, int64_t n0, int64_t n1, int64_t t0, int64_t tn) {
  __mmask16 m[NV];
  for (int v = 0; v < NV; ++v) {
    int64_t rem = tn - 16 * v;
    m[v] = rem >= 16 ? (__mmask16)0xFFFF : (rem > 0 ? (__mmask16)((1u << rem) - 1) : (__mmask16)0);
  }
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
      _mm512_mask_storeu_ps(yr + 16 * v, m[v], _mm512_fmadd_ps(_mm512_mul_ps(q, ws), s[v], b));
    }
  }
}

void csr_i8_portable(const uint8_t* xq, const float* sx, int64_t T, const int32_t* growptr, const int32_t* gcols,
                     const int32_t* gvals, const float* wscale, const int32_t* wsum, const float* bias, float* yt,
                     int64_t n0, int64_t n1, int64_t t0, int64_t tn) {
  for (int64_t n = n0; n < n1; ++n) {
    for (int64_t t = t0; t < t0 + tn; ++t) {
      int32_t acc = 0;
      for (int32_t j = growptr[n]; j < growptr[n + 1]; ++j) {
        const int8_t* w = reinterpret_cast<const int8_t*>(&gvals[j]);
        const uint8_t* x = xq + ((int64_t)gcols[j] * T + t) * 4;
        acc += (int32_t)x[0] * w[0] + (int32_t)x[1] * w[1] + (int32_t)x[2] * w[2] + (int32_t)x[3] * w[3];
      }
      yt[n * T + t] = (float)(acc - 128 * wsum[n]) * wscale[n] * sx[t] + (bias ? bias[n] : 0.f);
    }
  }
}

const float* opt_ptr(const c10::optional<torch::Tensor>& b) { return b.has_value() ? b->data_ptr<float>() : nullptr; }

}  // namespace

// ================================================================ entry points
torch::Tensor csr_f32(torch::Tensor xt, torch::Tensor rowptr, torch::Tensor cols, torch::Tensor vals,
                      c10::optional<torch::Tensor> bias, int64_t nv, bool portable) {
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
    if (!vec) return csr_f32_portable(x, T, rp, c, w, b, y, n0, n1, t0, tn);
    switch (nv) {
      case 2: return csr_f32_avx512<2>(rp, c, w, b, n0, n1, tn, xs, ldx, yo, ldy);
      case 4: return csr_f32_avx512<4>(rp, c, w, b, n0, n1, tn, xs, ldx, yo, ldy);
      case 8: return csr_f32_avx512<8>(rp, c, w, b, n0, n1, tn, xs, ldx, yo, ldy);
      default: TORCH_CHECK(false, "nv must be 2, 4 or 8");
    }
  });
  return yt;
}

torch::Tensor b4_f32(torch::Tensor xt, torch::Tensor browptr, torch::Tensor bcols, torch::Tensor bvals,
                     c10::optional<torch::Tensor> bias, int64_t nv, bool portable) {
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
    if (!vec) return b4_f32_portable(x, T, rp, c, w, b, y, g0, g1, t0, tn);
    switch (nv) {
      case 2: return b4_f32_avx512<2>(rp, c, w, b, g0, g1, tn, xs, ldx, yo, ldy);
      case 4: return b4_f32_avx512<4>(rp, c, w, b, g0, g1, tn, xs, ldx, yo, ldy);
      default: TORCH_CHECK(false, "nv must be 2 or 4");
    }
  });
  return yt;
}

// Per-token dynamic quantisation of X [T, K] (K % 4 == 0) into the [K/4, T, 4] u8 layout.
std::vector<torch::Tensor> quantize_tokens(torch::Tensor x) {
  TORCH_CHECK(x.dim() == 2 && x.is_contiguous() && x.scalar_type() == torch::kFloat, "x: contiguous float [T, K]");
  const int64_t T = x.size(0), K = x.size(1);
  TORCH_CHECK(K % 4 == 0, "K must be a multiple of 4");
  auto xq = torch::empty({K / 4, T, 4}, x.options().dtype(torch::kUInt8));
  auto sx = torch::empty({T}, x.options());
  const float* xp = x.data_ptr<float>();
  uint8_t* q = xq.data_ptr<uint8_t>();
  float* s = sx.data_ptr<float>();
  at::parallel_for(0, T, 16, [&](int64_t tb, int64_t te) {
  for (int64_t t = tb; t < te; ++t) {
    const float* row = xp + t * K;
    float amax = 0.f;
    for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::abs(row[k]));
    const float scale = amax > 0.f ? amax / 127.f : 1.f;
    const float inv = 1.f / scale;
    s[t] = scale;
    for (int64_t k = 0; k < K; ++k) {
      const int v = (int)std::nearbyint(row[k] * inv);
      q[((k >> 2) * T + t) * 4 + (k & 3)] = (uint8_t)(std::max(-127, std::min(127, v)) + 128);
    }
  }
  });
  return {xq, sx};
}

torch::Tensor csr_i8(torch::Tensor xq, torch::Tensor sx, torch::Tensor growptr, torch::Tensor gcols, torch::Tensor gvals,
                     torch::Tensor wscale, torch::Tensor wsum, c10::optional<torch::Tensor> bias, int64_t nv, bool portable) {
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
    if (!vec) return csr_i8_portable(x, s, T, rp, c, w, ws, wsm, b, y, n0, n1, t0, tn);
    switch (nv) {
      case 2: return csr_i8_avx512<2>(x, s, T, rp, c, w, ws, wsm, b, y, n0, n1, t0, tn);
      case 4: return csr_i8_avx512<4>(x, s, T, rp, c, w, ws, wsm, b, y, n0, n1, t0, tn);
      case 8: return csr_i8_avx512<8>(x, s, T, rp, c, w, ws, wsm, b, y, n0, n1, t0, tn);
      default: TORCH_CHECK(false, "nv must be 2, 4 or 8");
    }
  });
  return yt;
}

// Per-token dynamic quantisation from the transposed layout X^T [K, T] into [K/4, T, 4] u8.
std::vector<torch::Tensor> quantize_tokens_t(torch::Tensor xt) {
  TORCH_CHECK(xt.dim() == 2 && xt.is_contiguous() && xt.scalar_type() == torch::kFloat, "xt: contiguous float [K, T]");
  const int64_t K = xt.size(0), T = xt.size(1);
  TORCH_CHECK(K % 4 == 0, "K must be a multiple of 4");
  auto xq = torch::empty({K / 4, T, 4}, xt.options().dtype(torch::kUInt8));
  auto sx = torch::zeros({T}, xt.options());
  const float* x = xt.data_ptr<float>();
  uint8_t* q = xq.data_ptr<uint8_t>();
  float* s = sx.data_ptr<float>();
  for (int64_t k = 0; k < K; ++k) {  // column maxima, row by row (contiguous)
    const float* row = x + k * T;
    for (int64_t t = 0; t < T; ++t) s[t] = std::max(s[t], std::abs(row[t]));
  }
  std::vector<float> inv(T);
  for (int64_t t = 0; t < T; ++t) {
    s[t] = s[t] > 0.f ? s[t] / 127.f : 1.f;
    inv[t] = 1.f / s[t];
  }
  at::parallel_for(0, K / 4, 8, [&](int64_t cb, int64_t ce) {
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
torch::Tensor add_layernorm_t(torch::Tensor xt, torch::Tensor rt, torch::Tensor w, torch::Tensor b, double eps) {
  TORCH_CHECK(xt.is_contiguous() && rt.is_contiguous() && xt.sizes() == rt.sizes(), "x, r: contiguous [H, T]");
  const int64_t H = xt.size(0), T = xt.size(1);
  auto yt = torch::empty_like(xt);
  const float *x = xt.data_ptr<float>(), *r = rt.data_ptr<float>(), *g = w.data_ptr<float>(), *bb = b.data_ptr<float>();
  float* y = yt.data_ptr<float>();
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

std::vector<bool> cpu_features() { return {has_avx512(), has_vnni()}; }

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("csr_f32", &csr_f32, "unstructured sparse weight (CSR) x X^T, fp32");
  m.def("b4_f32", &b4_f32, "4x1-block sparse weight x X^T, fp32");
  m.def("quantize_tokens", &quantize_tokens, "per-token u8 quantisation into [K/4, T, 4]");
  m.def("csr_i8", &csr_i8, "sparse int8 weight (groups of 4 inputs) x quantised X, VNNI");
  m.def("quantize_tokens_t", &quantize_tokens_t, "per-token u8 quantisation of X^T [K, T] into [K/4, T, 4]");
  m.def("add_layernorm_t", &add_layernorm_t, "LayerNorm(x + r) over dim 0 of [H, T]");
  m.def("cpu_features", &cpu_features, "(avx512, avx512-vnni)");
}
