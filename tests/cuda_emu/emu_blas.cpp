// The part of cuBLAS the CUDA plugin uses (single-precision gemm,
// column-major, scalars on the host), on the CPU for the emulation
// (tests/cuda_emu/README.md): a naive loop with double sums, after the
// checks cuBLAS makes (dimensions, leading dimensions) and the check that
// each matrix is device memory as large as its dimensions say.
#include <new>

#include "cublas_v2.h"

struct ich_emu_cublas {
    cudaStream_t stream;
    cublasMath_t math;
};

namespace {

// Whether the column-major matrix of rows x cols with leading dimension ld
// at p lies in device memory.
bool device_matrix(const float *p, int rows, int cols, int ld, char name)
{
    size_t count = cols > 0 ? (size_t)ld * (size_t)(cols - 1) + (size_t)rows : 0;
    if (!count || ich_emu_is_device(p, count * sizeof(float)))
        return true;
    ich_emu_misuse(cudaErrorInvalidValue,
                   "cublasSgemm: %c %p (%d x %d, ld %d) is not device memory of %zu floats", name,
                   (const void *)p, rows, cols, ld, count);
    return false;
}

} // namespace

extern "C" {

cublasStatus_t cublasCreate(cublasHandle_t *handle)
{
    *handle = new (std::nothrow) ich_emu_cublas{};
    return *handle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream)
{
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode)
{
    handle->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusString(cublasStatus_t status)
{
    switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}

// C (m x n) = alpha op(A) (m x k) op(B) (k x n) + beta C, column-major.
cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb,
                           int m, int n, int k, const float *alpha, const float *a, int lda,
                           const float *b, int ldb, const float *beta, float *c, int ldc)
{
    if (!handle)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    int a_rows = ta == CUBLAS_OP_N ? m : k, a_cols = ta == CUBLAS_OP_N ? k : m;
    int b_rows = tb == CUBLAS_OP_N ? k : n, b_cols = tb == CUBLAS_OP_N ? n : k;
    if (m < 0 || n < 0 || k < 0 || lda < (a_rows > 1 ? a_rows : 1) ||
        ldb < (b_rows > 1 ? b_rows : 1) || ldc < (m > 1 ? m : 1)) {
        ich_emu_misuse(cudaErrorInvalidValue,
                       "cublasSgemm: m %d n %d k %d with lda %d ldb %d ldc %d", m, n, k, lda, ldb,
                       ldc);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (m == 0 || n == 0)
        return CUBLAS_STATUS_SUCCESS;
    if (!device_matrix(a, a_rows, a_cols, lda, 'A') || !device_matrix(b, b_rows, b_cols, ldb, 'B') ||
        !device_matrix(c, m, n, ldc, 'C'))
        return CUBLAS_STATUS_INVALID_VALUE;
    const float al = *alpha, be = *beta; // host scalars are read at the call
    ich_emu_enqueue([=]() {
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                double sum = 0.0;
                for (int p = 0; p < k; p++) {
                    float av = ta == CUBLAS_OP_N ? a[i + (size_t)p * lda] : a[p + (size_t)i * lda];
                    float bv = tb == CUBLAS_OP_N ? b[p + (size_t)j * ldb] : b[j + (size_t)p * ldb];
                    sum += (double)av * bv;
                }
                float *out = &c[i + (size_t)j * ldc];
                // beta 0: C is not read (it may hold NaN), as BLAS says
                *out = (float)(al * sum + (be != 0.0f ? be * (double)*out : 0.0));
            }
    });
    return CUBLAS_STATUS_SUCCESS;
}

} // extern "C"
