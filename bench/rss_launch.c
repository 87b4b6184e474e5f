/*
 * rss-launch RESULT_FILE CMD [ARG...]
 *
 * Runs CMD, waits for it, writes "WALL_NS MAXRSS_KIB EXIT_CODE\n" to RESULT_FILE and
 * exits with CMD's exit code (128+signal if it was killed).
 *
 * Why not os.wait4 from the Python bench directly: Linux keeps the peak RSS of the
 * pre-exec image in the child's ru_maxrss (exec_mmap -> setmax_mm_hiwater_rss), and a
 * child forked from Python starts as a copy of the Python process, so ru_maxrss would
 * never be below the bench's own RSS (~14 MiB even for /bin/true). Forking from this
 * tiny C program lowers that floor to well under 1 MiB.
 * Built by bench/render_bench.py with `cc -O2` into target/bench-tools/.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: rss-launch RESULT_FILE CMD [ARG...]\n");
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("rss-launch: fork");
        return 2;
    }
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        fprintf(stderr, "rss-launch: cannot run %s: %s\n", argv[2], strerror(errno));
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            perror("rss-launch: wait4");
            return 2;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long long ns = (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    FILE *f = fopen(argv[1], "w");
    if (f == NULL) {
        perror("rss-launch: result file");
        return 2;
    }
    fprintf(f, "%lld %ld %d\n", ns, (long)ru.ru_maxrss, code);
    if (fclose(f) != 0) {
        perror("rss-launch: result file");
        return 2;
    }
    return code;
}
