/* redlab-netns: the lab's network namespaces, each held by a forked sleeper.
 *
 * Mininet starts a node with `mnexec -cdn bash` (then stty): a fork of the caller and
 * several execs per node.  Inside User-mode Linux every exec and every fork of a large
 * process (the harness's Python) costs a few hundred milliseconds, which made a 64-server
 * lab's nodes alone take most of a minute.  This small process is started once per lab;
 * each node is then one fork of it, with no exec.
 *
 * Protocol, one line each way:
 *   stdin  "net\n"   a child in a new network and mount namespace, set up as
 *                    `mnexec -n` sets it up (/ made private, sysfs of the new
 *                    namespace mounted on /sys), so that `mnexec -a PID` enters it the
 *                    same way;
 *          "root\n"  a child in this process's namespaces (a root-namespace switch);
 *   stdout "PID\n" once the child is ready, or "error TEXT\n".
 *
 * Each child is a session leader (its pid is its process group, which the harness's
 * journal kills), has stdin, stdout and stderr on /dev/null, and sleeps until a signal
 * ends it (SIGHUP from Mininet, SIGKILL from the journal).  Children are reaped here
 * (SIGCHLD ignored), so none lingers as a zombie.  At end of input this process exits;
 * its children stay until they are killed.
 *
 * Build: cc -O2 -Wall -Wextra -o redlab-netns redlab_netns.c (scripts/bootstrap does).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

static int setup_child(int in_namespace)
{
    if (setsid() < 0)
        return errno;
    if (in_namespace) {
        if (unshare(CLONE_NEWNET | CLONE_NEWNS) < 0)
            return errno;
        if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
            return errno;
        if (mount("sysfs", "/sys", "sysfs", MS_MGC_VAL, NULL) < 0)
            return errno;
    }
    int null = open("/dev/null", O_RDWR);
    if (null < 0)
        return errno;
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    if (null > 2)
        close(null);
    return 0;
}

static void spawn(int in_namespace)
{
    int ready[2];
    if (pipe(ready) < 0) {
        printf("error pipe: %s\n", strerror(errno));
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        printf("error fork: %s\n", strerror(errno));
        close(ready[0]);
        close(ready[1]);
        return;
    }
    if (pid == 0) {
        close(ready[0]);
        signal(SIGCHLD, SIG_DFL);
        int err = setup_child(in_namespace);
        if (write(ready[1], &err, sizeof err) != (ssize_t)sizeof err)
            _exit(1);
        close(ready[1]);
        if (err)
            _exit(1);
        for (;;)
            pause();
    }
    close(ready[1]);
    int err = 0;
    ssize_t got = read(ready[0], &err, sizeof err);
    close(ready[0]);
    if (got != (ssize_t)sizeof err)
        printf("error child %d died while setting up\n", (int)pid);
    else if (err)
        printf("error %s\n", strerror(err));
    else
        printf("%d\n", (int)pid);
}

int main(void)
{
    char line[64];
    signal(SIGCHLD, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (fgets(line, sizeof line, stdin)) {
        if (strcmp(line, "net\n") == 0)
            spawn(1);
        else if (strcmp(line, "root\n") == 0)
            spawn(0);
        else
            printf("error unknown request\n");
    }
    return 0;
}
