/*
 * Keeps values in AVX2 registers across a long loop and checks them at the end: if the
 * kernel running this process loses the upper halves of the YMM registers when it
 * switches to another process and back (an FPU state saved or restored short), the
 * eight lanes stop agreeing with each other and with the scalar reference.
 *
 *   fpu_check SEED ITERATIONS   -> exit 0 and "ok", or exit 1 and what differed
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	uint32_t seed = (uint32_t)strtoul(argv[1], NULL, 0);
	long iterations = strtol(argv[2], NULL, 0);
	__m256i a = _mm256_set1_epi32((int)seed), acc = _mm256_setzero_si256();
	const __m256i one = _mm256_set1_epi32(1);
	uint32_t ref_a = seed, ref_acc = 0;

	for (long i = 0; i < iterations; i++) {
		acc = _mm256_add_epi32(acc, a);
		a = _mm256_add_epi32(a, one);
		/* keep both in registers, and the loop un-foldable */
		__asm__ volatile("" : "+x"(acc), "+x"(a));
		ref_acc += ref_a++;
	}
	uint32_t lanes[8];
	_mm256_storeu_si256((__m256i *)lanes, acc);
	for (int i = 0; i < 8; i++) {
		if (lanes[i] != ref_acc) {
			printf("lane %d: %u, expected %u\n", i, lanes[i], ref_acc);
			return 1;
		}
	}
	printf("ok %u\n", ref_acc);
	return 0;
}
