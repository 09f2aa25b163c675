// The CUDA runtime on the CPU, for running libich-cuda.so's code without a
// GPU (tests/cuda_emu/README.md).
//
// Device memory: each cudaMalloc block is its own mapping, placed at the
// end of its pages with a guard page after it, and kept PROT_NONE except
// while emulated device work runs (ich_emu_device_enter/leave): host code
// that reads or writes device memory directly, which would fail on a GPU,
// faults here too. Copies check their direction against the pointers.
// A device size limit (ICH_EMU_DEVICE_MB, default 4096) makes out-of-
// memory paths testable.
//
// The stream is a queue of closures that runs when the host waits, with
// CUDA's rules for when that is (ich_emu_enqueue in cuda_runtime.h).
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <map>
#include <mutex>
#include <set>
#include <vector>

#include "cuda_runtime.h"

namespace {

struct region {
    char *mapping;   // what mmap returned
    size_t mapped;   // its length, the guard page included
    size_t bytes;    // what cudaMalloc was asked for
};

std::recursive_mutex g_lock;          // memory registry and launches
std::map<uintptr_t, region> g_device; // by the pointer handed out
std::map<uintptr_t, size_t> g_pinned; // cudaMallocHost blocks: start, bytes
std::vector<std::function<void()>> g_queue;
size_t g_device_used;
int g_open;                           // depth of ich_emu_device_enter
bool g_stalled;                       // ich_emu_stall: the stream hangs
cudaError_t g_last_error = cudaSuccess;

size_t page_size()
{
    static size_t size = (size_t)sysconf(_SC_PAGESIZE);
    return size;
}

size_t device_limit()
{
    const char *text = getenv("ICH_EMU_DEVICE_MB");
    long mb = text ? strtol(text, NULL, 10) : 0;
    return (size_t)(mb > 0 ? mb : 4096) << 20;
}

void protect_all(int prot)
{
    for (auto &entry : g_device)
        mprotect(entry.second.mapping, entry.second.mapped - page_size(), prot);
}

cudaError_t fail(cudaError_t error)
{
    g_last_error = error;
    return error;
}

// The region holding [p, p + bytes), or NULL.
const region *find(const void *p, size_t bytes)
{
    uintptr_t at = (uintptr_t)p;
    auto it = g_device.upper_bound(at);
    if (it == g_device.begin())
        return NULL;
    --it;
    if (at < it->first || at + bytes > it->first + it->second.bytes || at + bytes < at)
        return NULL;
    return &it->second;
}

// Whether p points into any device block at all (even past its end).
bool inside_any(const void *p)
{
    uintptr_t at = (uintptr_t)p;
    auto it = g_device.upper_bound(at);
    if (it == g_device.begin())
        return false;
    --it;
    return at >= (uintptr_t)it->second.mapping && at < (uintptr_t)it->second.mapping + it->second.mapped;
}

bool pinned(const void *p, size_t bytes)
{
    uintptr_t at = (uintptr_t)p;
    auto it = g_pinned.upper_bound(at);
    if (it == g_pinned.begin())
        return false;
    --it;
    return at >= it->first && at + bytes <= it->first + it->second;
}

// Run the queued work, in order, with device memory open.
void drain()
{
    std::lock_guard<std::recursive_mutex> hold(g_lock);
    if (g_queue.empty())
        return;
    std::vector<std::function<void()>> work;
    work.swap(g_queue);
    ich_emu_device_enter();
    for (auto &item : work)
        item();
    ich_emu_device_leave();
}

} // namespace

void ich_emu_enqueue(std::function<void()> work)
{
    std::lock_guard<std::recursive_mutex> hold(g_lock);
    g_queue.push_back(std::move(work));
}

extern "C" {

void ich_emu_misuse(cudaError_t error, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    fprintf(stderr, "cuda emulator: ");
    vfprintf(stderr, fmt, args);
    fprintf(stderr, "\n");
    va_end(args);
    g_last_error = error;
}

void ich_emu_device_enter(void)
{
    g_lock.lock();
    if (g_open++ == 0)
        protect_all(PROT_READ | PROT_WRITE);
}

void ich_emu_device_leave(void)
{
    if (--g_open == 0)
        protect_all(PROT_NONE);
    g_lock.unlock();
}

int ich_emu_is_device(const void *pointer, size_t bytes)
{
    std::lock_guard<std::recursive_mutex> hold(g_lock);
    return find(pointer, bytes) != NULL;
}

cudaError_t cudaGetDeviceCount(int *count)
{
    if (getenv("ICH_EMU_NO_DEVICE")) {
        *count = 0;
        return fail(cudaErrorNoDevice);
    }
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device)
{
    return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice);
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device)
{
    if (device != 0)
        return fail(cudaErrorInvalidDevice);
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "libich CUDA emulator on the CPU");
    prop->totalGlobalMem = device_limit();
    prop->major = 9;
    prop->minor = 0;
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags)
{
    (void)flags;
    static char the_stream;
    *stream = (cudaStream_t)(void *)&the_stream;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream)
{
    (void)stream;
    drain();
    return cudaSuccess;
}

cudaError_t cudaStreamQuery(cudaStream_t stream)
{
    (void)stream;
    {
        std::lock_guard<std::recursive_mutex> hold(g_lock);
        if (g_stalled)
            return cudaErrorNotReady;
    }
    drain();
    return cudaSuccess;
}

void ich_emu_stall(int on)
{
    std::lock_guard<std::recursive_mutex> hold(g_lock);
    g_stalled = on != 0;
}

cudaError_t cudaMalloc(void **pointer, size_t bytes)
{
    std::lock_guard<std::recursive_mutex> hold(g_lock);
    *pointer = NULL;
    if (g_device_used + bytes > device_limit() || g_device_used + bytes < bytes)
        return fail(cudaErrorMemoryAllocation);
    size_t page = page_size();
    size_t span = (bytes + page - 1) / page * page;
    size_t mapped = span + page; // + the guard page
    void *mapping = mmap(NULL, mapped, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapping == MAP_FAILED)
        return fail(cudaErrorMemoryAllocation);
    // The block ends as close to the guard page as CUDA's 256-byte
    // alignment allows, so overruns fault.
    uintptr_t start = ((uintptr_t)mapping + span - bytes) & ~(uintptr_t)255;
    g_device[start] = region{(char *)mapping, mapped, bytes};
    g_device_used += bytes;
    if (g_open)
        mprotect(mapping, span, PROT_READ | PROT_WRITE);
    *pointer = (void *)start;
    return cudaSuccess;
}

cudaError_t cudaFree(void *pointer)
{
    std::lock_guard<std::recursive_mutex> hold(g_lock);
    if (!pointer)
        return cudaSuccess;
    drain(); // cudaFree waits for the device
    auto it = g_device.find((uintptr_t)pointer);
    if (it == g_device.end()) {
        ich_emu_misuse(cudaErrorInvalidDevicePointer, "cudaFree(%p): not a cudaMalloc block",
                       pointer);
        return cudaErrorInvalidDevicePointer;
    }
    munmap(it->second.mapping, it->second.mapped);
    g_device_used -= it->second.bytes;
    g_device.erase(it);
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void **pointer, size_t bytes)
{
    std::lock_guard<std::recursive_mutex> hold(g_lock);
    *pointer = aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
    if (!*pointer)
        return fail(cudaErrorMemoryAllocation);
    g_pinned[(uintptr_t)*pointer] = bytes;
    return cudaSuccess;
}

cudaError_t cudaFreeHost(void *pointer)
{
    std::lock_guard<std::recursive_mutex> hold(g_lock);
    if (!pointer)
        return cudaSuccess;
    drain(); // cudaFreeHost waits for the device
    if (!g_pinned.erase((uintptr_t)pointer)) {
        ich_emu_misuse(cudaErrorInvalidValue, "cudaFreeHost(%p): not a cudaMallocHost block",
                       pointer);
        return cudaErrorInvalidValue;
    }
    free(pointer);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind,
                            cudaStream_t stream)
{
    std::lock_guard<std::recursive_mutex> hold(g_lock);
    (void)stream;
    bool dst_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool src_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (kind == cudaMemcpyHostToHost) {
        ich_emu_misuse(cudaErrorInvalidMemcpyDirection, "cudaMemcpyAsync: host to host");
        return cudaErrorInvalidMemcpyDirection;
    }
    if (bytes == 0)
        return cudaSuccess;
    const struct {
        const void *pointer;
        bool device;
        const char *name;
    } ends[2] = {{dst, dst_device, "destination"}, {src, src_device, "source"}};
    for (const auto &end : ends) {
        if (end.device && !find(end.pointer, bytes)) {
            ich_emu_misuse(cudaErrorInvalidValue,
                           "cudaMemcpyAsync(kind %d): %s %p + %zu bytes is not inside one device "
                           "block",
                           (int)kind, end.name, end.pointer, bytes);
            return cudaErrorInvalidValue;
        }
        if (!end.device && inside_any(end.pointer)) {
            ich_emu_misuse(cudaErrorInvalidValue,
                           "cudaMemcpyAsync(kind %d): %s %p is device memory, host expected",
                           (int)kind, end.name, end.pointer);
            return cudaErrorInvalidValue;
        }
    }
    // Pageable host memory: CUDA copies through its own staging, and the
    // call returns once the host side is done with (here: all of it).
    // Pinned memory and device to device: queued.
    bool queued = kind == cudaMemcpyDeviceToDevice ||
                  (kind == cudaMemcpyHostToDevice && pinned(src, bytes)) ||
                  (kind == cudaMemcpyDeviceToHost && pinned(dst, bytes));
    if (queued) {
        ich_emu_enqueue([=]() { memmove(dst, src, bytes); });
        return cudaSuccess;
    }
    drain();
    ich_emu_device_enter();
    memmove(dst, src, bytes);
    ich_emu_device_leave();
    return cudaSuccess;
}

cudaError_t cudaGetLastError(void)
{
    std::lock_guard<std::recursive_mutex> hold(g_lock);
    cudaError_t error = g_last_error;
    g_last_error = cudaSuccess;
    return error;
}

cudaError_t cudaPeekAtLastError(void)
{
    std::lock_guard<std::recursive_mutex> hold(g_lock);
    return g_last_error;
}

const char *cudaGetErrorName(cudaError_t error)
{
    switch (error) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    }
    return "cudaErrorUnknown";
}

const char *cudaGetErrorString(cudaError_t error)
{
    switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorNotReady: return "device not ready";
    }
    return "unknown error";
}

} // extern "C"

// ---- kernels ----------------------------------------------------------------

dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace {

// The threads of one block as coroutines, for kernels that call
// __syncthreads: each runs until it reaches the barrier or ends, then the
// next; when all are at the barrier they go on together.
struct fiber {
    ucontext_t context;
    std::vector<char> stack;
    bool done;
};

std::vector<fiber> g_fibers;
ucontext_t g_scheduler;
const std::function<void()> *g_kernel;
size_t g_current;
bool g_in_fibers, g_synced;

void fiber_main()
{
    (*g_kernel)();
    g_fibers[g_current].done = true; // uc_link returns to the scheduler
}

dim3 thread_at(size_t t, dim3 block)
{
    return dim3((unsigned)(t % block.x), (unsigned)(t / block.x % block.y),
                (unsigned)(t / ((size_t)block.x * block.y)));
}

// Runs one block as fibers; false on a barrier that not every thread reached.
bool run_block_as_fibers(dim3 block, size_t threads)
{
    if (g_fibers.size() < threads)
        g_fibers.resize(threads);
    for (size_t t = 0; t < threads; t++) {
        fiber &f = g_fibers[t];
        f.stack.resize(256 * 1024);
        f.done = false;
        getcontext(&f.context);
        f.context.uc_stack.ss_sp = f.stack.data();
        f.context.uc_stack.ss_size = f.stack.size();
        f.context.uc_link = &g_scheduler;
        makecontext(&f.context, fiber_main, 0);
    }
    g_in_fibers = true;
    for (;;) {
        size_t finished = 0;
        for (size_t t = 0; t < threads; t++) {
            if (g_fibers[t].done) {
                finished++;
                continue;
            }
            g_current = t;
            threadIdx = thread_at(t, block);
            swapcontext(&g_scheduler, &g_fibers[t].context);
            finished += g_fibers[t].done;
        }
        if (finished == threads)
            break;
        if (finished) {
            g_in_fibers = false;
            return false; // some ended while others wait at a barrier
        }
    }
    g_in_fibers = false;
    return true;
}

} // namespace

void __syncthreads()
{
    if (!g_in_fibers) {
        // A block other than the first called it although the first did
        // not: the emulator's assumption (and CUDA's rule) is broken.
        fprintf(stderr, "cuda emulator: __syncthreads outside the first block's pattern\n");
        abort();
    }
    g_synced = true;
    swapcontext(&g_fibers[g_current].context, &g_scheduler);
}

namespace {

void run_kernel(dim3 grid, dim3 block, const std::function<void()> &kernel);

} // namespace

void ich_emu_launch(dim3 grid, dim3 block, std::function<void()> kernel)
{
    std::lock_guard<std::recursive_mutex> hold(g_lock);
    size_t threads = (size_t)block.x * block.y * block.z;
    if (threads == 0 || threads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 ||
        grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) {
        ich_emu_misuse(cudaErrorInvalidConfiguration,
                       "kernel launch with grid (%u, %u, %u), block (%u, %u, %u)", grid.x, grid.y,
                       grid.z, block.x, block.y, block.z);
        return;
    }
    ich_emu_enqueue([=]() { run_kernel(grid, block, kernel); });
}

namespace {

// Runs in the queue, device memory open.
void run_kernel(dim3 grid, dim3 block, const std::function<void()> &kernel)
{
    size_t threads = (size_t)block.x * block.y * block.z;
    gridDim = grid;
    blockDim = block;
    g_kernel = &kernel;
    g_synced = false;
    bool first = true;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                blockIdx = dim3(x, y, z);
                if (first || g_synced) {
                    if (!run_block_as_fibers(block, threads)) {
                        fprintf(stderr, "cuda emulator: threads of a block ended while others "
                                        "waited at __syncthreads\n");
                        abort();
                    }
                    first = false;
                    continue;
                }
                for (size_t t = 0; t < threads; t++) {
                    threadIdx = thread_at(t, block);
                    kernel();
                }
            }
}

} // namespace
