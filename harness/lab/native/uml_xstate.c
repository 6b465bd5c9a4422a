/*
 * uml_xstate.so: lets Debian 12's User-mode Linux (6.1) run on hosts whose CPUs have a
 * larger XSAVE area than UML was built for (Intel AMX: 10-11 KiB instead of 2,696 bytes).
 *
 * Loaded into linux.uml with LD_PRELOAD by harness/lab/uml.py.  UML 6.1 saves and
 * restores a guest process's FPU state with ptrace(PTRACE_GETREGSET/SETREGSET,
 * NT_X86_XSTATE) on a buffer of its compiled-in size.  Reading into a short buffer is
 * fine (the host truncates), but the host refuses to write anything but a whole XSAVE
 * area (arch/x86/kernel/fpu/regset.c: xstateregs_set returns EFAULT), so on such hosts
 * the first context switch into the guest's init fails with "ptrace set fp regs failed,
 * errno = 14" and the guest kernel panics.  Upstream Linux fixed UML in 6.13 ("um: switch
 * to regset API and depend on XSTATE"); Debian 12 ships 6.1.
 *
 * The fix here: a short SETREGSET is padded with zeros to the host's size.  The padding
 * lies past every component UML knows (x87, SSE, AVX, AVX-512, PKRU); the XSAVE header in
 * UML's part marks the components past it (AMX) as in their initial state, which the
 * host then loads, whatever the padding holds.  No guest can use AMX (it needs an
 * arch_prctl permission the host never granted), so nothing is lost.  Every other call
 * goes through unchanged; on hosts where the sizes agree, so does this one.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef long (*ptrace_fn)(int, pid_t, void *, void *);

/* Larger than any XSAVE area an x86 CPU has today (AMX: 11,008 bytes). */
static unsigned char padded[64 * 1024];
static size_t host_size; /* the host's XSAVE size, learnt on the first short write */

long ptrace(enum __ptrace_request request, ...)
{
	static ptrace_fn real;
	va_list ap;
	pid_t pid;
	void *addr, *data;

	va_start(ap, request);
	pid = va_arg(ap, pid_t);
	addr = va_arg(ap, void *);
	data = va_arg(ap, void *);
	va_end(ap);
	if (!real)
		real = (ptrace_fn)dlsym(RTLD_NEXT, "ptrace");

	if (request == PTRACE_SETREGSET && (long)addr == NT_X86_XSTATE && data) {
		struct iovec *iov = data;

		if (!host_size) {
			struct iovec probe = { padded, sizeof(padded) };

			if (real(PTRACE_GETREGSET, pid, (void *)NT_X86_XSTATE, &probe) == 0)
				host_size = probe.iov_len;
		}
		if (host_size > iov->iov_len && host_size <= sizeof(padded)) {
			struct iovec whole = { padded, host_size };

			memcpy(padded, iov->iov_base, iov->iov_len);
			memset(padded + iov->iov_len, 0, host_size - iov->iov_len);
			return real(PTRACE_SETREGSET, pid, (void *)NT_X86_XSTATE, &whole);
		}
	}
	return real(request, pid, addr, data);
}
