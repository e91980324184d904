/*
 * chatgrade-sandbox: run one program of a submission in a box.
 *
 *   chatgrade-sandbox [options] -- PROGRAM [ARG...]
 *
 * harness/sandbox.py compiles this file on first use and decides the
 * options; this file only carries them out. It runs as root. Three layers:
 *
 *  keeper   this process. Joins the cgroups it is given, unshares PID,
 *           mount, IPC and UTS namespaces, forks the namespace's init and
 *           waits for it. It then ends the way the program ended (same exit
 *           status, or killed by the same signal), so the harness sees the
 *           program's own status, not ours.
 *  init     PID 1 of the new PID namespace. Makes mounts private, hides the
 *           listed directories under empty tmpfs, puts the exposed ones
 *           back, mounts a /proc that shows only this namespace, forks the
 *           program and reaps every orphan. When the program ends, init
 *           writes a report and exits, and the kernel kills everything
 *           still in the namespace: children, double-forked daemons,
 *           setsid escapees. Nothing a submission starts outlives it.
 *  program  resets signals, sets resource limits, drops to the
 *           unprivileged uid/gid with no supplementary groups and
 *           no_new_privs, changes directory, execs.
 *
 * Options:
 *   --uid N --gid N        run the program as N (default: stay root)
 *   --cgroup DIR           join cgroup DIR (write our pid to DIR/cgroup.procs)
 *   --hide DIR             mount an empty tmpfs over DIR
 *   --scratch DIR          mount an empty, world-writable (sticky) tmpfs over
 *                          DIR: /tmp, /dev/shm; its pages count against the
 *                          program's memory cgroup
 *   --expose DIR           keep DIR visible (read-write) even under a hidden one
 *   --expose-ro DIR        the same, read-only
 *   --chdir DIR            the program's working directory
 *   --report FILE          write "status N" and "left PID COMM" lines here
 *   --rlimit NAME=N        cpu, as, nproc, fsize, nofile, core (soft = hard = N)
 *   --ignore-signal N      start the program with signal N ignored (every
 *                          other one at its default)
 *
 * Signals: the harness signals our whole process group. The keeper and
 * init ignore them (init, being PID 1, would anyway) so that the program
 * alone decides what a SIGTERM means; SIGKILL of the group takes the keeper
 * and init down too, and with init the whole namespace.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_PATHS 32
#define MAX_LIMITS 8

struct expose {
	const char *path;
	int readonly;
	int fd;                 /* O_PATH handle taken before anything is hidden */
};

static struct {
	uid_t uid;
	gid_t gid;
	int drop;
	const char *cgroups[MAX_PATHS];
	int ncgroups;
	const char *hide[MAX_PATHS];
	int nhide;
	const char *scratch[MAX_PATHS];
	int nscratch;
	struct expose expose[MAX_PATHS];
	int nexpose;
	const char *chdir;
	const char *report;
	struct { int resource; rlim_t value; } limits[MAX_LIMITS];
	int nlimits;
	sigset_t ignored;
} opt;

static void die(const char *fmt, ...)
{
	va_list ap;
	char msg[512];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	/* Exit status 125 as env(1) and timeout(1) use it: the sandbox, not the
	 * program, failed; the message says which step. */
	dprintf(2, "chatgrade-sandbox: %s%s%s\n", msg, errno ? ": " : "",
		errno ? strerror(errno) : "");
	_exit(125);
}

static int parse_limit(const char *spec)
{
	static const struct { const char *name; int resource; } names[] = {
		{"cpu", RLIMIT_CPU}, {"as", RLIMIT_AS}, {"nproc", RLIMIT_NPROC},
		{"fsize", RLIMIT_FSIZE}, {"nofile", RLIMIT_NOFILE}, {"core", RLIMIT_CORE},
	};
	const char *eq = strchr(spec, '=');
	char *end;
	unsigned long long v;

	if (!eq || opt.nlimits == MAX_LIMITS)
		return -1;
	errno = 0;
	v = strtoull(eq + 1, &end, 10);
	if (errno || *end || end == eq + 1)
		return -1;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (strlen(names[i].name) == (size_t)(eq - spec) &&
		    strncmp(names[i].name, spec, (size_t)(eq - spec)) == 0) {
			opt.limits[opt.nlimits].resource = names[i].resource;
			opt.limits[opt.nlimits].value = (rlim_t)v;
			opt.nlimits++;
			return 0;
		}
	}
	return -1;
}

static int parse_args(int argc, char **argv)
{
	int i;

	sigemptyset(&opt.ignored);
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--") == 0)
			return i + 1 < argc ? i + 1 : -1;
		if (!v)
			return -1;
		i++;
		if (strcmp(a, "--uid") == 0) {
			opt.uid = (uid_t)strtoul(v, NULL, 10);
			opt.drop = 1;
		} else if (strcmp(a, "--gid") == 0) {
			opt.gid = (gid_t)strtoul(v, NULL, 10);
		} else if (strcmp(a, "--cgroup") == 0 && opt.ncgroups < MAX_PATHS) {
			opt.cgroups[opt.ncgroups++] = v;
		} else if (strcmp(a, "--hide") == 0 && opt.nhide < MAX_PATHS) {
			opt.hide[opt.nhide++] = v;
		} else if (strcmp(a, "--scratch") == 0 && opt.nscratch < MAX_PATHS) {
			opt.scratch[opt.nscratch++] = v;
		} else if ((strcmp(a, "--expose") == 0 || strcmp(a, "--expose-ro") == 0) &&
			   opt.nexpose < MAX_PATHS) {
			opt.expose[opt.nexpose].path = v;
			opt.expose[opt.nexpose].readonly = a[8] == '-';
			opt.nexpose++;
		} else if (strcmp(a, "--chdir") == 0) {
			opt.chdir = v;
		} else if (strcmp(a, "--report") == 0) {
			opt.report = v;
		} else if (strcmp(a, "--rlimit") == 0) {
			if (parse_limit(v) < 0)
				return -1;
		} else if (strcmp(a, "--ignore-signal") == 0) {
			char *end;
			long sig = strtol(v, &end, 10);

			if (*end || sig <= 0 || sig >= NSIG || sig == SIGKILL || sig == SIGSTOP)
				return -1;
			sigaddset(&opt.ignored, (int)sig);
		} else {
			return -1;
		}
	}
	return -1;
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0 || write(fd, text, strlen(text)) < 0)
		die("cannot write %s", path);
	close(fd);
}

/* mkdir -p inside a freshly mounted tmpfs; the components are ours. */
static void make_dirs(const char *path)
{
	char buf[PATH_MAX];

	if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
		die("path too long: %s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			die("mkdir %s", buf);
		*p = '/';
	}
	if (mkdir(buf, 0755) < 0 && errno != EEXIST)
		die("mkdir %s", buf);
	errno = 0;
}

static void build_view(void)
{
	char src[64];

	/* Nothing we mount may propagate back to the machine's namespace. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		die("making mounts private");
	for (int i = 0; i < opt.nexpose; i++) {
		/* No link at the last component (the harness checks the rest). */
		opt.expose[i].fd = open(opt.expose[i].path,
					O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (opt.expose[i].fd < 0)
			die("cannot open %s", opt.expose[i].path);
	}
	for (int i = 0; i < opt.nhide; i++) {
		struct stat st;

		if (stat(opt.hide[i], &st) < 0 || !S_ISDIR(st.st_mode))
			continue;       /* nothing there to hide */
		if (mount("chatgrade-hidden", opt.hide[i], "tmpfs", MS_NOSUID | MS_NODEV,
			  "size=1m,mode=755") < 0)
			die("hiding %s", opt.hide[i]);
	}
	for (int i = 0; i < opt.nscratch; i++) {
		struct stat st;

		if (stat(opt.scratch[i], &st) < 0 || !S_ISDIR(st.st_mode))
			continue;
		if (mount("chatgrade-scratch", opt.scratch[i], "tmpfs", MS_NOSUID | MS_NODEV,
			  "size=64m,mode=1777") < 0)
			die("mounting scratch space on %s", opt.scratch[i]);
	}
	for (int i = 0; i < opt.nexpose; i++) {
		make_dirs(opt.expose[i].path);
		/* The handle still names the directory under the tmpfs now on top. */
		snprintf(src, sizeof src, "/proc/self/fd/%d", opt.expose[i].fd);
		if (mount(src, opt.expose[i].path, NULL, MS_BIND | MS_REC, NULL) < 0)
			die("exposing %s", opt.expose[i].path);
		if (opt.expose[i].readonly &&
		    mount(NULL, opt.expose[i].path, NULL,
			  MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
			die("making %s read-only", opt.expose[i].path);
		close(opt.expose[i].fd);
	}
	/* A /proc of this PID namespace: no other process is visible, so none
	 * can be inspected or entered through /proc/PID/{root,cwd,fd}. */
	/* hidepid: not even init's command line (which names the hidden
	 * folders) is readable: only the program's own processes are. */
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  opt.drop ? "hidepid=2" : NULL) < 0)
		die("mounting /proc");
}

static void exec_program(char **argv)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	struct sigaction ign = { .sa_handler = SIG_IGN };
	sigset_t none;

	/* Start as a program started from a shell: default dispositions (an
	 * ignored signal survives exec), nothing blocked; except the ones a
	 * check asked to be ignored (--ignore-signal). */
	for (int s = 1; s < NSIG; s++)
		sigaction(s, sigismember(&opt.ignored, s) == 1 ? &ign : &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int i = 0; i < opt.nlimits; i++) {
		struct rlimit rl = { opt.limits[i].value, opt.limits[i].value };

		/* CPU: SIGXCPU at the soft limit says why; SIGKILL 5 s later if
		 * the program catches it. */
		if (opt.limits[i].resource == RLIMIT_CPU)
			rl.rlim_max = rl.rlim_cur + 5;

		if (setrlimit(opt.limits[i].resource, &rl) < 0)
			die("setrlimit");
	}
	if (opt.drop) {
		if (opt.gid == 0) {
			errno = 0;
			die("--uid needs a --gid other than 0");
		}
		if (setgroups(0, NULL) < 0 || setresgid(opt.gid, opt.gid, opt.gid) < 0 ||
		    setresuid(opt.uid, opt.uid, opt.uid) < 0)
			die("dropping privileges to %u:%u", (unsigned)opt.uid, (unsigned)opt.gid);
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		die("no_new_privs");
	/* The old working directory may be under a hidden one: leave it. */
	if (chdir(opt.chdir ? opt.chdir : "/") < 0)
		die("chdir %s", opt.chdir ? opt.chdir : "/");
	execvp(argv[0], argv);
	die("cannot run %s", argv[0]);
}

/* Every other process still in the namespace, for the report, with its
 * process group: 0 is the harness's group (seen from inside, its leader is
 * outside the namespace), which the harness's signals reach anyway; any
 * other group escaped it (setsid, setpgid) like a daemon. */
static void report_leftovers(FILE *report)
{
	DIR *d = opendir("/proc");
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		char path[64], stat[512], comm[64] = "?";
		long pid = strtol(e->d_name, NULL, 10), pgrp = -1;
		FILE *f;

		if (pid <= 1)
			continue;
		snprintf(path, sizeof path, "/proc/%ld/stat", pid);
		if ((f = fopen(path, "r")) != NULL) {
			if (fgets(stat, sizeof stat, f)) {
				/* pid (comm) state ppid pgrp ...: comm may hold spaces. */
				char *open = strchr(stat, '('), *close = strrchr(stat, ')');

				if (open && close && close > open) {
					snprintf(comm, sizeof comm, "%.*s", (int)(close - open - 1), open + 1);
					sscanf(close + 2, "%*c %*d %ld", &pgrp);
				}
			}
			fclose(f);
		}
		fprintf(report, "left %ld %ld %s\n", pid, pgrp, comm);
	}
	closedir(d);
}

static int run_init(char **argv, int status_fd, int report_fd)
{
	pid_t program;
	int status;
	FILE *report;

	build_view();
	program = fork();
	if (program < 0)
		die("fork");
	if (program == 0) {
		exec_program(argv);
	}
	/* init keeps no copy of the program's stdio: its streams end when the
	 * program's do. */
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	for (int fd = 0; fd < 3; fd++)
		dup2(null, fd);
	for (;;) {
		pid_t pid = wait(&status);

		if (pid == program)
			break;
		if (pid < 0 && errno != EINTR)
			die("wait");
		/* Another process of the namespace: an orphan we adopted. */
	}
	/* The keeper ends the way the program did: it needs the raw status. */
	if (write(status_fd, &status, sizeof status) != (ssize_t)sizeof status)
		die("reporting the status");
	report = report_fd >= 0 ? fdopen(report_fd, "w") : NULL;
	if (report) {
		fprintf(report, "status %d\n", status);
		report_leftovers(report);
		fclose(report);
	}
	/* Returning kills the rest of the namespace. */
	return 0;
}

static void end_like(int status)
{
	if (WIFEXITED(status))
		_exit(WEXITSTATUS(status));
	if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		struct rlimit nocore = { 0, 0 };
		struct sigaction dfl = { .sa_handler = SIG_DFL };
		sigset_t only;

		/* The program already dumped (or not); we must not. */
		setrlimit(RLIMIT_CORE, &nocore);
		sigaction(sig, &dfl, NULL);
		sigemptyset(&only);
		sigaddset(&only, sig);
		sigprocmask(SIG_UNBLOCK, &only, NULL);
		raise(sig);
		_exit(128 + sig);
	}
	_exit(125);
}

int main(int argc, char **argv)
{
	int first = parse_args(argc, argv);
	int status, report_fd = -1, pipefd[2];
	char pid[32];
	pid_t init;

	/* If the harness dies (even by SIGKILL), so do we, and with us init
	 * and the whole namespace: a killed grader leaves nothing running. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (first < 0) {
		errno = 0;
		die("usage: chatgrade-sandbox [--uid N --gid N] [--cgroup DIR] [--hide DIR] [--scratch DIR] "
		    "[--expose[-ro] DIR] [--chdir DIR] [--report FILE] [--rlimit NAME=N] [--ignore-signal N] -- PROGRAM [ARG...]");
	}
	snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	for (int i = 0; i < opt.ncgroups; i++) {
		char path[PATH_MAX];

		snprintf(path, sizeof path, "%s/cgroup.procs", opt.cgroups[i]);
		write_file(path, pid);
	}
	/* Ignore the signals the harness sends to our process group: the
	 * program answers them, we wait to report how it ended. The program
	 * resets them to default before exec. */
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP && s != SIGCHLD && s != SIGSEGV &&
		    s != SIGBUS && s != SIGFPE && s != SIGILL && s != SIGABRT)
			signal(s, SIG_IGN);
	if (unshare(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS) < 0)
		die("unshare");
	/* init reports the program's raw wait status through this pipe; the
	 * report file (if any) is written by init for the harness. */
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		die("pipe");
	if (opt.report) {
		report_fd = open(opt.report, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (report_fd < 0)
			die("cannot open %s", opt.report);
	}
	init = fork();
	if (init < 0)
		die("fork");
	if (init == 0) {
		/* If the keeper is killed, take the namespace down with it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(pipefd[0]);
		if (sethostname("chatgrade", 9) < 0)
			die("sethostname");
		_exit(run_init(argv + first, pipefd[1], report_fd));
	}
	close(pipefd[1]);
	if (report_fd >= 0)
		close(report_fd);
	{
		int null = open("/dev/null", O_RDWR);
		for (int fd = 0; fd < 3; fd++)
			dup2(null, fd);
		if (null > 2)
			close(null);
	}
	while (waitpid(init, &status, 0) < 0)
		if (errno != EINTR)
			die("waitpid");
	{
		int program_status;

		/* No status from init: it died itself (SIGKILL of the group, or
		 * a sandbox step failed): end the way init did. */
		if (read(pipefd[0], &program_status, sizeof program_status) ==
		    (ssize_t)sizeof program_status)
			end_like(program_status);
	}
	end_like(status);
	return 0;
}
