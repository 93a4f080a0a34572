// GPU probe for test/gpu/enforcer.sh: each mode checks or times one thing
// through the CUDA runtime, as applications reach the driver.
//   oom LIMIT        allocations around a memory limit of LIMIT bytes
//   hold BYTES SEC   holds BYTES for SEC seconds (prints "held")
//   try BYTES        exit 0 if BYTES can be allocated, 3 on out-of-memory
//   spin SEC         busy kernels of 500 us for SEC s; prints kernels/s
//   launch N         N empty launches; prints median and p99 ns per launch
//   alloc N          N cudaMalloc+cudaFree of 1 MiB; median and p99 ns
//   timing US        a US-microsecond kernel timed alone on an idle card:
//                    back to back (its true duration), between two events
//                    (what the launch latency adds), and with the start
//                    event held by a stream wait until the launch is queued
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include <cuda.h>
#include <cuda_runtime.h>

static int fails;
#define CHECK(cond, ...)                                                                                    \
	do {                                                                                                \
		if (!(cond)) {                                                                              \
			fails++;                                                                            \
			printf("FAIL %s: ", #cond);                                                         \
			printf(__VA_ARGS__);                                                                \
			printf("\n");                                                                       \
		}                                                                                           \
	} while (0)

static double now_ns()
{
	return (double)std::chrono::duration_cast<std::chrono::nanoseconds>(
		       std::chrono::steady_clock::now().time_since_epoch())
		.count();
}

__global__ void empty() {}

__global__ void spin(unsigned long long ns)
{
	unsigned long long t0, t;
	asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
	do {
		asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
	} while (t - t0 < ns);
}

static void stats(std::vector<double> &v, const char *what)
{
	std::sort(v.begin(), v.end());
	printf("%s median_ns %.0f p99_ns %.0f n %zu\n", what, v[v.size() / 2], v[v.size() * 99 / 100], v.size());
}

static void oom(size_t limit)
{
	const size_t MiB = 1 << 20;
	size_t free = 0, total = 0;
	void *a = nullptr, *b = nullptr;
	cudaMemGetInfo(&free, &total);
	printf("cudaMemGetInfo free %zu total %zu\n", free, total);
	CHECK(total == limit, "total %zu, limit %zu", total, limit);
	cudaError_t e = cudaMalloc(&a, limit + 64 * MiB);
	CHECK(e == cudaErrorMemoryAllocation, "past the limit: %s", cudaGetErrorName(e));
	cudaGetLastError();
	e = cudaMalloc(&a, limit - 64 * MiB);
	CHECK(e == cudaSuccess, "below the limit: %s", cudaGetErrorName(e));
	e = cudaMalloc(&b, 128 * MiB);
	CHECK(e == cudaErrorMemoryAllocation, "past the remainder: %s", cudaGetErrorName(e));
	cudaGetLastError();
	cudaMemGetInfo(&free, &total);
	CHECK(free <= 64 * MiB, "free %zu after allocating all but 64 MiB", free);
	cudaFree(a);
	e = cudaMallocAsync(&a, limit + 64 * MiB, 0);
	CHECK(e == cudaErrorMemoryAllocation, "cudaMallocAsync past the limit: %s", cudaGetErrorName(e));
	cudaGetLastError();
	e = cudaMallocAsync(&a, limit / 2, 0);
	CHECK(e == cudaSuccess, "cudaMallocAsync below the limit: %s", cudaGetErrorName(e));
	cudaFreeAsync(a, 0);
	cudaDeviceSynchronize();
	e = cudaMalloc(&a, limit - 64 * MiB);
	CHECK(e == cudaSuccess, "the same size again after frees: %s", cudaGetErrorName(e));
	cudaFree(a);
	printf("oom checks: %s\n", fails ? "FAILED" : "passed");
}

static void spin_for(double seconds)
{
	cudaStream_t s;
	cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
	spin<<<132, 128, 0, s>>>(500000);
	cudaStreamSynchronize(s);
	double t0 = now_ns(), end = t0 + seconds * 1e9, mark = t0 + 1e9;
	long n = 0, n_mark = 0;
	while (now_ns() < end) {
		spin<<<132, 128, 0, s>>>(500000);
		n++;
		if (now_ns() >= mark) {
			printf("second %.0f launches %ld\n", (mark - t0) / 1e9, n - n_mark);
			n_mark = n;
			mark += 1e9;
		}
	}
	cudaStreamSynchronize(s);
	double dt = (now_ns() - t0) / 1e9;
	printf("spin kernels_per_s %.1f (%ld in %.2f s) err %s\n", n / dt, n, dt, cudaGetErrorName(cudaGetLastError()));
}

static void launches(int n)
{
	std::vector<double> v;
	v.reserve(n);
	for (int i = 0; i < 2000; i++)
		empty<<<1, 1>>>();
	cudaDeviceSynchronize();
	for (int i = 0; i < n; i++) {
		double t0 = now_ns();
		empty<<<1, 1>>>();
		v.push_back(now_ns() - t0);
	}
	cudaDeviceSynchronize();
	CHECK(cudaGetLastError() == cudaSuccess, "launch error");
	stats(v, "launch");
}

static void allocs(int n)
{
	std::vector<double> v;
	void *p;
	for (int i = 0; i < 200; i++)
		cudaMalloc(&p, 1 << 20), cudaFree(p);
	for (int i = 0; i < n; i++) {
		double t0 = now_ns();
		cudaError_t e = cudaMalloc(&p, 1 << 20);
		cudaFree(p);
		v.push_back(now_ns() - t0);
		if (e != cudaSuccess) {
			CHECK(e == cudaSuccess, "cudaMalloc: %s", cudaGetErrorName(e));
			break;
		}
	}
	stats(v, "alloc_free");
}

static float event_ms(cudaEvent_t a, cudaEvent_t b)
{
	float ms = 0;
	cudaEventElapsedTime(&ms, a, b);
	return ms;
}

static void timing(double us)
{
	const unsigned long long ns = (unsigned long long)(us * 1000);
	cudaStream_t s;
	cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
	cudaEvent_t a, b;
	cudaEventCreate(&a);
	cudaEventCreate(&b);
	const int n = 400;
	spin<<<132, 128, 0, s>>>(ns);
	cudaEventRecord(a, s);
	for (int i = 0; i < n; i++)
		spin<<<132, 128, 0, s>>>(ns);
	cudaEventRecord(b, s);
	cudaStreamSynchronize(s);
	printf("timing back_to_back_us %.2f\n", 1000.0 * event_ms(a, b) / n);
	std::vector<double> alone, held;
	unsigned *flag = nullptr;
	CUdeviceptr dflag = 0;
	CHECK(cuMemHostAlloc((void **)&flag, 64, CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP) == CUDA_SUCCESS,
	      "cuMemHostAlloc");
	CHECK(cuMemHostGetDevicePointer(&dflag, flag, 0) == CUDA_SUCCESS, "cuMemHostGetDevicePointer");
	*flag = 0;
	for (unsigned i = 1; i <= (unsigned)n; i++) {
		cudaStreamSynchronize(s);
		std::this_thread::sleep_for(std::chrono::microseconds(200));
		cudaEventRecord(a, s);
		spin<<<132, 128, 0, s>>>(ns);
		cudaEventRecord(b, s);
		cudaStreamSynchronize(s);
		alone.push_back(1000.0 * event_ms(a, b));
		std::this_thread::sleep_for(std::chrono::microseconds(200));
		CUresult r = cuStreamWaitValue32(s, dflag, i, CU_STREAM_WAIT_VALUE_GEQ);
		if (r != CUDA_SUCCESS) {
			CHECK(r == CUDA_SUCCESS, "cuStreamWaitValue32: %d", (int)r);
			break;
		}
		cudaEventRecord(a, s);
		spin<<<132, 128, 0, s>>>(ns);
		cudaEventRecord(b, s);
		__atomic_store_n(flag, i, __ATOMIC_RELEASE);
		cudaStreamSynchronize(s);
		held.push_back(1000.0 * event_ms(a, b));
	}
	CHECK(cudaGetLastError() == cudaSuccess, "launch error");
	auto med = [](std::vector<double> &v) {
		std::sort(v.begin(), v.end());
		return v.empty() ? -1.0 : v[v.size() / 2];
	};
	printf("timing kernel_us %.1f alone_median_us %.2f held_median_us %.2f\n", us, med(alone), med(held));
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	const char *m = argv[1];
	cudaFree(nullptr); // creates the context
	if (!strcmp(m, "oom") && argc == 3)
		oom(strtoull(argv[2], nullptr, 10));
	else if (!strcmp(m, "hold") && argc == 4) {
		void *p;
		cudaError_t e = cudaMalloc(&p, strtoull(argv[2], nullptr, 10));
		printf("%s\n", e == cudaSuccess ? "held" : cudaGetErrorName(e));
		fflush(stdout);
		std::this_thread::sleep_for(std::chrono::duration<double>(atof(argv[3])));
	} else if (!strcmp(m, "try") && argc == 3) {
		void *p;
		cudaError_t e = cudaMalloc(&p, strtoull(argv[2], nullptr, 10));
		printf("try %s: %s\n", argv[2], cudaGetErrorName(e));
		return e == cudaSuccess ? 0 : e == cudaErrorMemoryAllocation ? 3 : 1;
	} else if (!strcmp(m, "spin") && argc == 3)
		spin_for(atof(argv[2]));
	else if (!strcmp(m, "launch") && argc == 3)
		launches(atoi(argv[2]));
	else if (!strcmp(m, "timing") && argc == 3)
		timing(atof(argv[2]));
	else if (!strcmp(m, "alloc") && argc == 3)
		allocs(atoi(argv[2]));
	else
		return 2;
	return fails ? 1 : 0;
}
