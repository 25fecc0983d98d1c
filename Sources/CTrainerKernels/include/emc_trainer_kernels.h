#ifndef EMC_TRAINER_KERNELS_H
#define EMC_TRAINER_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Trainer kernels over NHWC float32 buffers (see Sources/EMCTrainer for the layer math). */
void emc_relu_forward(float *restrict y, const float *restrict x, size_t n);
void emc_relu_backward(float *restrict dx, const float *restrict x, const float *restrict dy, size_t n);
/// y[r][c] = bias[c] for every row r.
void emc_add_bias(float *restrict y, const float *restrict bias, size_t rows, size_t columns);
/// out[c] += sum over rows of x[r][c].
void emc_sum_rows(float *restrict out, const float *restrict x, size_t rows, size_t columns);
void emc_im2row(float *restrict rows, const float *restrict x, int batch, int h, int w, int c,
                int kernel, int stride, int padding, int ho, int wo);
void emc_row2im(float *restrict dx, const float *restrict rows, int batch, int h, int w, int c,
                int kernel, int stride, int padding, int ho, int wo);
void emc_maxpool_forward(float *restrict y, int32_t *restrict argmax, const float *restrict x,
                         int batch, int h, int w, int c, int kernel, int stride, int ho, int wo);
void emc_maxpool_backward(float *restrict dx, const int32_t *restrict argmax, const float *restrict dy,
                          int batch, size_t in_count, size_t out_count);
/* The same for the windows of emc_maxpool_forward's arguments: when they tile the input (stride = kernel, H = Ho·K,
   W = Wo·K) and there are 8 channels or more, each input is written once, without a clearing pass; otherwise it is
   emc_maxpool_backward. */
void emc_maxpool_backward_windows(float *restrict dx, const int32_t *restrict argmax, const float *restrict dy,
                                  int batch, int h, int w, int c, int kernel, int stride, int ho, int wo);

/* Depthwise convolution, NHWC, filters tap-major w[ky·K + kx][c] (depthwise.c). Each adds into its output:
   forward y[o][c] += Σ_t w[t][c]·x[i(o,t)][c]; filter gradient dw[t][c] += Σ_o dy[o][c]·x[i(o,t)][c]; input gradient
   dx[i(o,t)][c] += dy[o][c]·w[t][c]; i(o, t) the input pixel under tap t of output pixel o, taps outside the image
   skipped. Every element is updated in the order (pixel, ky, kx), with no contraction, at every instruction set. */
void emc_depthwise_forward(float *restrict y, const float *restrict x, const float *restrict w, int batch, int h, int width,
                           int c, int kernel, int stride, int padding, int ho, int wo);
void emc_depthwise_filter_gradient(float *restrict dw, const float *restrict dy, const float *restrict x, int batch, int h,
                                   int width, int c, int kernel, int stride, int padding, int ho, int wo);
void emc_depthwise_input_gradient(float *restrict dx, const float *restrict dy, const float *restrict w, int batch, int h,
                                  int width, int c, int kernel, int stride, int padding, int ho, int wo);

/* Batch normalisation's passes over `rows` rows of c channels (norm.c). Sums are per channel, in double, added to
   what the output holds; x̂ = (x − mean)·istd is recomputed where needed, never stored; every clone gives the same bits.
   emc_channel_moments: sum[ch] += Σ x, squares[ch] += Σ x²;  emc_batchnorm_apply: y = γ·x̂ + β;
   emc_channel_gradient_sums: Σ dy and Σ dy·x̂;  emc_batchnorm_input_gradient: dx = (γ·istd)·((dy − mean_dy) − x̂·mean_dyh).
   With `relu` a ReLU follows in the same pass: y = max(0, γ·x̂ + β), and backward's dy is zeroed where that y was not
   positive (the mask recomputed from x, bit for bit the forward's). */
void emc_channel_moments(double *restrict sum, double *restrict squares, const float *restrict x, size_t rows, size_t c);
void emc_batchnorm_apply(float *restrict y, const float *restrict x, const float *restrict mean, const float *restrict istd,
                         const float *restrict gamma, const float *restrict beta, size_t rows, size_t c, int relu);
void emc_channel_gradient_sums(double *restrict sum_dy, double *restrict sum_dyh, const float *restrict dy,
                               const float *restrict x, const float *restrict mean, const float *restrict istd,
                               const float *restrict gamma, const float *restrict beta, size_t rows, size_t c, int relu);
void emc_batchnorm_input_gradient(float *restrict dx, const float *restrict dy, const float *restrict x,
                                  const float *restrict mean, const float *restrict istd, const float *restrict gamma,
                                  const float *restrict beta, const float *restrict mean_dy, const float *restrict mean_dyh,
                                  size_t rows, size_t c, int relu);

/* Layer normalisation over each of `rows` rows of c values (norm.c), row sums in 16 fixed lanes: forward writes
   y = γ·x̂ + β, x̂ and each row's 1/√(σ² + ε); backward adds dγ += Σ dy·x̂, dβ += Σ dy and, when dx is not NULL, writes
   dx = istd·(dy·γ − mean(dy·γ) − x̂·mean(dy·γ·x̂)), with c floats of scratch. */
void emc_layernorm_forward(float *restrict y, float *restrict h, float *restrict istd, const float *restrict x,
                           const float *restrict gamma, const float *restrict beta, size_t rows, size_t c, float epsilon);
void emc_layernorm_backward(float *restrict dx, float *restrict dgamma, float *restrict dbeta, float *restrict scratch,
                            const float *restrict dy, const float *restrict h, const float *restrict istd,
                            const float *restrict gamma, size_t rows, size_t c);

/* C (m×n, row stride ldc) += Aᵀ·B, with A k×m (row stride lda) and B k×n (row stride ldb): for small m and n and a long k
   (gemm_tall.c). emc_gemm_tall_level() tells which version the CPU runs: 2 AVX-512, 1 AVX2 with FMA, 0 none (then
   emc_gemm_tall_accumulate does nothing and returns 0, and the caller uses BLAS). Both versions give the same bits. */
int emc_gemm_tall_level(void);
int emc_gemm_tall_accumulate(int level, int m, int n, size_t k, const float *a, size_t lda, const float *b, size_t ldb,
                             float *c, size_t ldc);
/* The same over `runs` runs of `length` rows: run r is A's rows at a + runA[r] + k·lda and B's at b + runB[r] + k·ldb
   (element offsets), k < length; each element of C is the fused multiply-add chain over the runs' rows in order (a
   convolution's weight gradient over the valid positions of a padded grid: A the dense output gradient, B the padded
   input). */
int emc_gemm_tall_runs(int level, int m, int n, size_t runs, size_t length, const float *a, size_t lda,
                       const size_t *runA, const float *b, size_t ldb, const size_t *runB, float *c, size_t ldc);

/* A convolution's weight gradient dW [cout][K][K·cin] += Σ over the runs' rows of dy[q][co] · x[q + ky·rowStep][j]: for
   each kernel row ky, emc_gemm_tall_runs with B = x + ky·rowStep (x rows ldx apart, runs at runX, dy at runDy), or, where
   a kernel row has fewer columns than there are output channels (a first layer's 3 or 9), a tile with the channels in
   the vector's lanes. Each element the same chain over the rows in order, whichever tile computes it. With db (not
   NULL), also db[co] += Σ dy[q][co], each in row order as emc_sum_rows's general path sums (columns that do not divide
   16): in the same pass over dy where the channels sit in lanes, by a pass of its own elsewhere. Returns 0 (nothing
   done) at level 0. */
int emc_conv_weight_gradient(int level, int cout, int kernel, int cin, size_t runs, size_t length, const float *dy,
                             size_t ldDy, const size_t *runDy, const float *x, size_t ldx, const size_t *runX,
                             size_t rowStep, float *dW, float *db);
/* The same for columns c0..<c1 of each kernel row (j = kx·cin + ci) only: every element's chain is the whole pass's, so
   parts that split the columns give its bits (db: every channel's sum; give it to one part only). Returns −1 (nothing
   done) for columns outside 0..<K·cin. */
int emc_conv_weight_gradient_columns(int level, int cout, int kernel, int cin, int c0, int c1, size_t runs, size_t length,
                                     const float *dy, size_t ldDy, const size_t *runDy, const float *x, size_t ldx,
                                     const size_t *runX, size_t rowStep, float *dW, float *db);
/* Whether emc_conv_weight_gradient takes the pairs kernel (AVX-512, cout ≤ 8, K·cin ≤ 24), whose time does not shrink
   with fewer output channels (their lanes sit in one vector): such a weight gradient splits by columns instead. */
int emc_conv_weight_gradient_pairs(int level, int cout, int kernel, int cin);

/* y[q][co] = Σ_{ky<K} Σ_{j<K·C} x[(q + ky·Wp)·C + j] · w[(ky·K·C + j)·cout + co] for q < m (conv_direct.c): a stride-1
   convolution over zero-padded images of width Wp (`paddedWidth`), the patches read in place as overlapping rows. x must
   be readable up to ((m − 1 + (K − 1)·Wp)·C + K·C) floats. Same levels as emc_gemm_tall_level; returns 0 (nothing
   done) at level 0. Each output is one fused multiply-add chain over (ky, j) in order from zero, except at cout ≤ 8:
   there G = 4 (cout ≤ 4) or 2 (cout ≤ 8) chains, chain g over the taps j ≡ g (mod G) of each kernel row, added in
   order g = 0, 1, … at the end. `scratch` holds emc_conv_direct_scratch(cout, kernel, channels) floats (0: may be NULL). */
size_t emc_conv_direct_scratch(int cout, int kernel, int channels);
int emc_conv_direct(int level, size_t m, int cout, int kernel, int channels, size_t paddedWidth, const float *x,
                    const float *w, float *y, float *scratch);
/* A batch of padded images for the dense form: each paddedHeight × paddedWidth, one after the other; the output is
   height × width per image, output (oy, ox) reading the padded rows stride·oy + ky from column stride·ox. */
typedef struct { size_t paddedHeight, paddedWidth, height, width, stride; } emc_grid_shape;
/* The same sums for each output of `images` padded images (rows of K·C floats, patches stride·C apart), each written
   straight into the dense NHWC output y [images, height, width, cout], plus bias[co] after the chain when bias is not
   NULL. Reads only inside the padded images. */
int emc_conv_direct_dense(int level, size_t images, int cout, int kernel, int channels, const emc_grid_shape *grid,
                          const float *x, const float *w, float *y, const float *bias, float *scratch);

/* The input gradient dx [images, height, width, cin] of a convolution with weights w [cout][K][K][cin], stride S and
   padding P, from its output gradient placed in a zero grid of gridHeight × gridWidth per image at offset
   (⌈K/S⌉ − 1, ⌈K/S⌉ − 1), the grid reaching at least row and column ⌈K/S⌉ − 1 + (height − 1 + P) / S. Each element is
   the fused multiply-add chain over its phase's taps (t, u, co) in order, grouped as emc_conv_direct's at cin ≤ 8.
   `scratch` holds emc_conv_transposed_scratch(cin, kernel, cout) floats. */
size_t emc_conv_transposed_scratch(int cin, int kernel, int cout);
int emc_conv_transposed(int level, size_t images, int cin, int kernel, int cout, int stride, int padding, size_t height,
                        size_t width, const float *dyGrid, size_t gridHeight, size_t gridWidth, const float *w, float *dx,
                        float *scratch);

/* exp and erf from arithmetic alone, so that loops over them vectorise (libm's expf and erff are calls). The same
   operations at every instruction set (no contraction into FMA), so every clone gives the same bits.
   emc_exp: Cephes' range reduction and degree-6 polynomial, within 2 ulp of expf on [-87, 88]; clamped outside it (NaN
   stays NaN). emc_erf: Abramowitz and Stegun 7.1.26 (|error| ≤ 1.5e-7 in exact arithmetic, ≤ 6e-7 in float), the form
   PyTorch's vectorised GELU uses. */
#pragma clang fp contract(off)
static inline float emc_exp(float x) {
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.7f ? 88.7f : x;
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest */
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float e = p * (r * r) + r + 1.0f;
    union { int32_t i; float f; } scale;
    scale.i = ((int32_t)n + 127) << 23;
    return e * scale.f;
}

/* erf(x), and in *gaussian the exp(−x²) it is made from (GELU's derivative reuses it: exp(−v²/2) at x = v/√2). */
static inline float emc_erf_gaussian(float x, float *gaussian) {
    float a = x < 0 ? -x : x;
    float t = 1.0f / (0.3275911f * a + 1.0f);
    float r = 1.061405429f;
    r = r * t + -1.453152027f;
    r = r * t + 1.421413741f;
    r = r * t + -0.284496736f;
    r = r * t + 0.254829592f;
    *gaussian = emc_exp(-a * a);
    float y = 1.0f - r * t * *gaussian;
    return x < 0 ? -y : y;
}

static inline float emc_erf(float x) {
    float gaussian;
    return emc_erf_gaussian(x, &gaussian);
}
#pragma clang fp contract(on)

/* Activations over n floats (the exact-erf GELU through emc_erf, SiLU and the sigmoid through emc_exp). GELU and SiLU
   write their derivative f′(x) beside y (the exponentials are shared with y's, and backward is then one product):
   dx = dy · f′(x) is emc_multiply. */
void emc_gelu_forward(float *restrict y, float *restrict derivative, const float *restrict x, size_t n);
void emc_silu_forward(float *restrict y, float *restrict derivative, const float *restrict x, size_t n);
void emc_multiply(float *restrict z, const float *restrict x, const float *restrict y, size_t n);
void emc_sigmoid_forward(float *restrict y, const float *restrict x, size_t n);
/* Each of `rows` rows of `columns` floats becomes its softmax, in place (max subtracted; the sum in order). */
void emc_softmax_rows(float *restrict p, size_t rows, size_t columns);
/* Softmax's backward in place: each row of g becomes p ⊙ (g − Σ p·g), p the row's softmax. */
void emc_softmax_backward_rows(float *restrict g, const float *restrict p, size_t rows, size_t columns);
/* C = A·B (+ bias per column) (+ C when accumulate), A m×depth (rows lda apart), B depth×n (ldb), C m×n (ldc), by
   product.c's tiles: each element one fused multiply-add chain over depth in order, whatever rows a call covers. `level`
   (here and below): a KernelLevel, emc_gemm_tall_level() or lower; ≥ 1 the AVX2 tiles, 0 the scalar path (the same bits). */
void emc_product_rows(int level, int m, int n, int depth, const float *a, size_t lda, const float *b, size_t ldb, float *c,
                      size_t ldc, const float *bias, int accumulate);
/* xᵀ: `rows` rows of `columns` floats, ld apart, become `columns` rows of `rows` floats at y. */
void emc_transpose(int level, float *y, const float *x, size_t ld, int rows, int columns);
/* Self-attention's core for one sample (product.c) for the first `queries` tokens' queries (all `tokens`, or 1: a class
   token's, where nothing after the layer reads the other tokens): `qkv` holds `tokens` rows of [q | k | v] (3·dim
   floats), `out` and `gradOut` `queries` rows of dim, `probs` heads × queries × tokens; `scratch` holds
   tokens·(tokens + dim/heads) floats. The backward writes zeros for the other tokens' query gradients. */
void emc_attention_forward(int level, const float *qkv, float *out, float *probs, int tokens, int queries, int dim, int heads,
                           float *scratch);
void emc_attention_backward(int level, const float *qkv, const float *probs, const float *gradOut, float *gradQKV, int tokens,
                            int queries, int dim, int heads, float *scratch);



/* Parts of passes for a team of threads (Threads.swift): each computes, for its columns, channels or rows, exactly what
   the whole pass computes there. emc_sum_rows_range, emc_channel_moments_range and emc_channel_gradient_sums_range are
   the general paths for columns c0..<c1 (the whole pass's bits at counts that do not divide 16; the two batch-norm sums'
   at 16 channels too when the sums start at zero); emc_layernorm_backward is
   emc_layernorm_parameter_gradient (channels c0..<c1) plus emc_layernorm_input_gradient (its rows);
   emc_depthwise_filter_gradient_range is emc_depthwise_filter_gradient for channels c0..<c1. */
void emc_sum_rows_range(float *restrict out, const float *restrict x, size_t rows, size_t columns, size_t c0, size_t c1);
void emc_channel_moments_range(double *restrict sum, double *restrict squares, const float *restrict x, size_t rows, size_t c,
                               size_t c0, size_t c1);
void emc_channel_gradient_sums_range(double *restrict sum_dy, double *restrict sum_dyh, const float *restrict dy,
                                     const float *restrict x, const float *restrict mean, const float *restrict istd,
                                     const float *restrict gamma, const float *restrict beta, size_t rows, size_t c, size_t c0,
                                     size_t c1, int relu);
void emc_layernorm_parameter_gradient(float *restrict dgamma, float *restrict dbeta, const float *restrict dy,
                                      const float *restrict h, size_t rows, size_t c, size_t c0, size_t c1);
void emc_layernorm_input_gradient(float *restrict dx, float *restrict scratch, const float *restrict dy, const float *restrict h,
                                  const float *restrict istd, const float *restrict gamma, size_t rows, size_t c);
void emc_depthwise_filter_gradient_range(float *restrict dw, const float *restrict dy, const float *restrict x, int batch, int h,
                                         int width, int c, int kernel, int stride, int padding, int ho, int wo, int c0, int c1);
/* emc_depthwise_filter_gradient for taps t0..<t1 (ky·K + kx) of every channel. */
void emc_depthwise_filter_gradient_taps(float *restrict dw, const float *restrict dy, const float *restrict x, int batch, int h,
                                        int width, int c, int kernel, int stride, int padding, int ho, int wo, int t0, int t1);

/* A team of threads (pool.c): emc_pool_create(T) starts T − 1 workers (NULL for T < 2 or when threads cannot start);
   emc_pool_run calls fn(context, p) once for each part p < parts (at most T), part 0 on the calling thread and the others
   on whichever thread claims them first (the caller too, when a worker is late), and returns when all have ended. Work a part splits again runs on that part's thread. emc_pool_current is the team the calling
   thread's passes use (NULL: none), set per thread by emc_pool_set_current, which returns the one it replaces. */
typedef struct emc_pool emc_pool;
typedef void (*emc_part_fn)(void *context, int part);
emc_pool *emc_pool_create(int threads);
void emc_pool_destroy(emc_pool *pool);
int emc_pool_threads(const emc_pool *pool);
/* Jobs the team has split over its threads so far. */
unsigned long emc_pool_jobs(const emc_pool *pool);
void emc_pool_run(emc_pool *pool, int parts, emc_part_fn fn, void *context);
emc_pool *emc_pool_current(void);
emc_pool *emc_pool_set_current(emc_pool *pool);
/* Seconds one cache line takes to go from the caller's core to a worker's and back: the median over batches of 100 of
   `rounds` round trips (at most 102,400; 0 without a team): how far apart the team's cores are (emc bench threads
   reports it with each measurement). */
double emc_pool_round_trip(emc_pool *pool, long rounds);

/* The optimizers' elementwise steps over n parameters (nn.c), PyTorch's arithmetic in its order without contraction.
   SGD with momentum mu (the buffer set to d on the first step), Nesterov or not, L2 weight decay wd; Adam with L2 decay
   or AdamW's decoupled p·(1 − lr·wd), stepSize = lr / (1 − β1^t), bias2Root = √(1 − β2^t). */
void emc_sgd_step(float *restrict p, const float *restrict g, float *restrict buffer, size_t n, float lr, float wd,
                  float mu, int firstStep, int nesterov);
void emc_adam_step(float *restrict p, const float *restrict g, float *restrict m, float *restrict v, size_t n, float lr,
                   float wd, int decoupled, float beta1, float beta2, float eps, float stepSize, float bias2Root);

/* Squeeze-and-excitation's gate over `pixels` rows of c channels (nn.c): y = x·g; dg[ch] += Σ dy·x over the rows in
   order; dx += dy·g. Each product rounded before its sum. */
void emc_scale_channels(float *restrict y, const float *restrict x, const float *restrict g, size_t pixels, size_t c);
void emc_channel_product_sums(float *restrict dg, const float *restrict dy, const float *restrict x, size_t pixels, size_t c);
void emc_add_scaled_channels(float *restrict dx, const float *restrict dy, const float *restrict g, size_t pixels, size_t c);

#endif
