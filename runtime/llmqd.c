// SPDX-License-Identifier: GPL-2.0
/*
 * llmqd: command line, start-up and daemonisation.  Every flag is checked;
 * a bad one exits 2 with a single line on stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sys/resource.h>
#include <unistd.h>

#include "admin_keys.h"
#include "libllmq.h"
#include "llmqd.h"
#include "log.h"
#include "model.h"
#include "sd_notify.h"

#define LLMQD_VERSION "0.1"

enum {
	OPT_SOCKET = 256,
	OPT_ENGINE,
	OPT_GPU_MEM_UTIL,
	OPT_NULL_DELAY,
	OPT_BATCH_TIMEOUT,
	OPT_MAX_BATCH,
	OPT_MAX_CLIENT_REQS,
	OPT_MAX_CQ_OVERFLOW,
	OPT_MAX_PROMPT,
	OPT_MAX_TOKENS,
	OPT_SHUTDOWN_TIMEOUT,
	OPT_HANDSHAKE_TIMEOUT,
	OPT_SOCKET_MODE,
	OPT_POLL_US,
	OPT_MODEL,
	OPT_ENFORCE_EAGER,
	OPT_GPU_WEIGHTS,
	OPT_THREADS,
	OPT_KV_CACHE_MB,
	OPT_KV_CACHE_DTYPE,
	OPT_NUM_KV_BLOCKS,
	OPT_BLOCK_SIZE,
	OPT_MAX_NUM_SEQS,
	OPT_MAX_NUM_BATCHED,
	OPT_MAX_MODEL_LEN,
	OPT_MAX_QUEUED,
	OPT_NO_PREFIX_CACHING,
	OPT_PREFIX_SALT,
	OPT_FOREGROUND,
	OPT_VERSION,
	OPT_TRANSPORT,
	OPT_MAX_NUM_SEQS_LIMIT,
	OPT_MAX_NUM_BATCHED_LIMIT,
};

/* The bundled model's path when no --model is given; cfg points here. */
static char default_model[PATH_MAX];

static const struct option options[] = {
	{ "socket",		required_argument, NULL, OPT_SOCKET },
	{ "transport",		required_argument, NULL, OPT_TRANSPORT },
	{ "engine",		required_argument, NULL, OPT_ENGINE },
	{ "gpu-memory-utilization", required_argument, NULL, OPT_GPU_MEM_UTIL },
	{ "null-delay-us",	required_argument, NULL, OPT_NULL_DELAY },
	{ "batch-timeout-ms",	required_argument, NULL, OPT_BATCH_TIMEOUT },
	{ "max-batch-size",	required_argument, NULL, OPT_MAX_BATCH },
	{ "max-client-requests", required_argument, NULL, OPT_MAX_CLIENT_REQS },
	{ "max-cq-overflow",	required_argument, NULL, OPT_MAX_CQ_OVERFLOW },
	{ "max-prompt-bytes",	required_argument, NULL, OPT_MAX_PROMPT },
	{ "max-tokens-limit",	required_argument, NULL, OPT_MAX_TOKENS },
	{ "shutdown-timeout-ms", required_argument, NULL, OPT_SHUTDOWN_TIMEOUT },
	{ "handshake-timeout-ms", required_argument, NULL, OPT_HANDSHAKE_TIMEOUT },
	{ "socket-mode",	required_argument, NULL, OPT_SOCKET_MODE },
	{ "poll-us",		required_argument, NULL, OPT_POLL_US },
	{ "model",		required_argument, NULL, OPT_MODEL },
	{ "enforce-eager",	no_argument,       NULL, OPT_ENFORCE_EAGER },
	{ "gpu-weights",	required_argument, NULL, OPT_GPU_WEIGHTS },
	{ "threads",		required_argument, NULL, OPT_THREADS },
	{ "kv-cache-mb",	required_argument, NULL, OPT_KV_CACHE_MB },
	{ "kv-cache-dtype",	required_argument, NULL, OPT_KV_CACHE_DTYPE },
	{ "num-kv-blocks",	required_argument, NULL, OPT_NUM_KV_BLOCKS },
	{ "block-size",		required_argument, NULL, OPT_BLOCK_SIZE },
	{ "max-num-seqs",	required_argument, NULL, OPT_MAX_NUM_SEQS },
	{ "max-num-batched-tokens", required_argument, NULL, OPT_MAX_NUM_BATCHED },
	{ "max-num-seqs-limit",	required_argument, NULL, OPT_MAX_NUM_SEQS_LIMIT },
	{ "max-num-batched-tokens-limit", required_argument, NULL, OPT_MAX_NUM_BATCHED_LIMIT },
	{ "max-model-len",	required_argument, NULL, OPT_MAX_MODEL_LEN },
	{ "max-queued-requests", required_argument, NULL, OPT_MAX_QUEUED },
	{ "no-prefix-caching",	no_argument,	   NULL, OPT_NO_PREFIX_CACHING },
	{ "prefix-cache-salt",	required_argument, NULL, OPT_PREFIX_SALT },
	{ "foreground",		no_argument,	   NULL, OPT_FOREGROUND },
	{ "verbose",		no_argument,	   NULL, 'v' },
	{ "help",		no_argument,	   NULL, 'h' },
	{ "version",		no_argument,	   NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: llmqd [OPTIONS]\n"
		"  --socket PATH             userspace-transport socket (default $LLMQ_SOCKET or %s)\n"
		"  --transport T             kernel (/dev/llmq), shm (the socket) or auto: kernel\n"
		"                            when /dev/llmq exists (default auto); the socket\n"
		"                            always serves admin requests and clients naming it\n"
		"  --engine NAME             cpu, cuda or null (default cpu)\n"
		"  --model FILE              GGUF model for the cpu and cuda engines (default:\n"
		"                            the bundled " LLMQ_DEFAULT_MODEL ")\n"
		"  --threads N               cpu engine: compute threads, 0..1024; 0 = one per core\n"
		"                            (default 0)\n"
		"  --gpu-memory-utilization F  cuda engine: share of the GPU's memory for weights,\n"
		"                            scratch and KV cache, (0, 1] (default 0.9)\n"
		"  --enforce-eager           cuda engine: launch every step's kernels one by one,\n"
		"                            no CUDA graphs for decode steps\n"
		"  --gpu-weights W           cuda engine: auto (quantised weights stay as they are,\n"
		"                            others BF16) or bf16 (all BF16) (default auto)\n"
		"  --null-delay-us N         null engine: simulated step time, 0..10000000 (default 0)\n"
		"  --kv-cache-mb N           KV cache size in MiB, 1..1048576 (default 256)\n"
		"  --kv-cache-dtype T        KV cache elements: auto, f32 or f16 (cpu), auto or\n"
		"                            bf16 (cuda); auto: cpu f16, f32 for F32 models\n"
		"                            (default auto)\n"
		"  --num-kv-blocks N         exactly N KV blocks, 1..16777216 (overrides --kv-cache-mb)\n"
		"  --block-size N            tokens per KV block, 1..1024 (default 16)\n"
		"  --batch-timeout-ms N      batch window, 0..60000; 0 starts at once (default 2)\n"
		"  --max-batch-size N        requests waiting that close the window early, 1..4096\n"
		"                            (default --max-num-seqs)\n"
		"  --max-num-seqs N          sequences per step, 1..4096 (default 64)\n"
		"  --max-num-batched-tokens N  tokens per step, 1..65536 (default 128)\n"
		"  --max-num-seqs-limit N    how high llmqctl may raise max_num_seqs while\n"
		"                            running, 1..4096 (default --max-num-seqs)\n"
		"  --max-num-batched-tokens-limit N  how high llmqctl may raise\n"
		"                            max_num_batched_tokens, 1..65536\n"
		"                            (default --max-num-batched-tokens)\n"
		"  --max-model-len N         longest prompt + output in tokens, 2..16777216\n"
		"                            (default: the model's context, capped by the KV cache)\n"
		"  --max-queued-requests N   waiting requests before -EBUSY, 1..1048576 (default 4096)\n"
		"  --no-prefix-caching       compute every prompt in full\n"
		"  --prefix-cache-salt S     uid: users share cached prefixes only with\n"
		"                            themselves; none: everyone shares (default uid)\n"
		"  --max-client-requests N   requests one client may have in flight, 1..65536 (default 256)\n"
		"  --max-cq-overflow N       CQEs held for a full CQ before -ENOBUFS, 1..1048576 (default 4096)\n"
		"  --max-prompt-bytes N      longest prompt, 1..%u (default 1048576)\n"
		"  --max-tokens-limit N      largest max_tokens, 1..16777216 (default 32768)\n"
		"  --shutdown-timeout-ms N   grace for in-flight requests on SIGTERM, 0..600000 (default 5000)\n"
		"  --handshake-timeout-ms N  a connection's first message must come within this,\n"
		"                            1..3600000 (default 5000)\n"
		"  --socket-mode MODE        octal permissions of the socket (default 0666)\n"
		"  --poll-us N               spin this long looking at rings before sleeping,\n"
		"                            0..100000; 0 always sleeps (default 50)\n"
		"  --foreground              do not daemonise; log to stderr\n"
		"  -v, --verbose             more logging (repeat for debug)\n"
		"  -h, --help                this text\n"
		"  --version                 print the version\n",
		LLMQ_DEFAULT_SOCKET, LLMQ_MAX_ARENA);
}

static void bad_flag(const char *flag, const char *val, const char *why)
{
	fprintf(stderr, "llmqd: --%s: '%s' %s\n", flag, val, why);
	exit(2);
}

static uint32_t parse_u32(const char *flag, const char *s, uint32_t lo, uint32_t hi, int base)
{
	unsigned long long v;
	char *end;
	char why[64];

	errno = 0;
	if (!*s || *s == '-' || *s == '+')
		bad_flag(flag, s, "is not a number");
	v = strtoull(s, &end, base);
	if (*end)
		bad_flag(flag, s, "is not a number");
	if (errno || v < lo || v > hi) {
		snprintf(why, sizeof(why), base == 8 ? "is not in %o..%o" : "is not in %u..%u",
			 lo, hi);
		bad_flag(flag, s, why);
	}
	return (uint32_t)v;
}

static void parse_args(struct llmqd_config *cfg, int argc, char **argv)
{
	int opt;

	opterr = 0;	/* our own one-line message instead of getopt's */
	while ((opt = getopt_long(argc, argv, ":vh", options, NULL)) != -1) {
		switch (opt) {
		case OPT_TRANSPORT:
			if (!strcmp(optarg, "kernel"))
				cfg->transport = TRANSPORT_KERNEL;
			else if (!strcmp(optarg, "shm"))
				cfg->transport = TRANSPORT_SHM;
			else if (!strcmp(optarg, "auto"))
				cfg->transport = TRANSPORT_AUTO;
			else
				bad_flag("transport", optarg, "is not kernel, shm or auto");
			break;
		case OPT_SOCKET:
			if (!*optarg)
				bad_flag("socket", optarg, "is empty");
			cfg->socket_path = optarg;
			break;
		case OPT_ENGINE:
			if (strcmp(optarg, "null") && strcmp(optarg, "cpu") && strcmp(optarg, "cuda"))
				bad_flag("engine", optarg, "is not a known engine (cpu, cuda, null)");
			cfg->engine.backend = optarg;
			break;
		case OPT_GPU_MEM_UTIL: {
			char *end;

			errno = 0;
			cfg->engine.gpu_memory_utilization = strtod(optarg, &end);
			if (errno || end == optarg || *end ||
			    !(cfg->engine.gpu_memory_utilization > 0) ||
			    cfg->engine.gpu_memory_utilization > 1)
				bad_flag("gpu-memory-utilization", optarg, "is not in (0, 1]");
			break;
		}
		case OPT_ENFORCE_EAGER:
			cfg->engine.enforce_eager = true;
			break;
		case OPT_GPU_WEIGHTS:
			if (strcmp(optarg, "auto") && strcmp(optarg, "bf16"))
				bad_flag("gpu-weights", optarg, "is not auto or bf16");
			cfg->engine.gpu_bf16_weights = !strcmp(optarg, "bf16");
			break;
		case OPT_MODEL:
			if (!*optarg)
				bad_flag("model", optarg, "is empty");
			cfg->engine.model_path = optarg;
			break;
		case OPT_THREADS:
			cfg->engine.threads = parse_u32("threads", optarg, 0, 1024, 10);
			break;
		case OPT_KV_CACHE_MB:
			cfg->kv_cache_mb = parse_u32("kv-cache-mb", optarg, 1, 1 << 20, 10);
			break;
		case OPT_KV_CACHE_DTYPE:
			if (backend_kv_dtype_parse(optarg, &cfg->engine.kv_dtype))
				bad_flag("kv-cache-dtype", optarg, "is not auto, f32, f16 or bf16");
			break;
		case OPT_NUM_KV_BLOCKS:
			cfg->engine.kv_blocks = parse_u32("num-kv-blocks", optarg, 1, 1 << 24, 10);
			break;
		case OPT_BLOCK_SIZE:
			cfg->engine.block_size = parse_u32("block-size", optarg, 1, 1024, 10);
			break;
		case OPT_MAX_NUM_SEQS:
			cfg->sched.max_num_seqs = parse_u32("max-num-seqs", optarg, 1, LLMQ_MAX_NUM_SEQS_MAX, 10);
			break;
		case OPT_MAX_NUM_BATCHED:
			cfg->sched.max_num_batched_tokens =
				parse_u32("max-num-batched-tokens", optarg, 1,
					  LLMQ_MAX_BATCHED_TOKENS_MAX, 10);
			break;
		case OPT_MAX_NUM_SEQS_LIMIT:
			cfg->sched.max_num_seqs_limit =
				parse_u32("max-num-seqs-limit", optarg, 1, LLMQ_MAX_NUM_SEQS_MAX, 10);
			break;
		case OPT_MAX_NUM_BATCHED_LIMIT:
			cfg->max_num_batched_tokens_limit =
				parse_u32("max-num-batched-tokens-limit", optarg, 1,
					  LLMQ_MAX_BATCHED_TOKENS_MAX, 10);
			break;
		case OPT_MAX_MODEL_LEN:
			cfg->engine.max_model_len = parse_u32("max-model-len", optarg, 2, 1 << 24, 10);
			break;
		case OPT_MAX_QUEUED:
			cfg->sched.max_queued = parse_u32("max-queued-requests", optarg, 1, LLMQ_MAX_QUEUED_MAX,
							  10);
			break;
		case OPT_NO_PREFIX_CACHING:
			cfg->prefix_caching = false;
			break;
		case OPT_PREFIX_SALT:
			if (!strcmp(optarg, "uid"))
				cfg->prefix_salt_uid = true;
			else if (!strcmp(optarg, "none"))
				cfg->prefix_salt_uid = false;
			else
				bad_flag("prefix-cache-salt", optarg, "is not uid or none");
			break;
		case OPT_NULL_DELAY:
			cfg->null_delay_us = parse_u32("null-delay-us", optarg, 0, 10000000, 10);
			break;
		case OPT_BATCH_TIMEOUT:
			cfg->batch_timeout_ms = parse_u32("batch-timeout-ms", optarg, 0, LLMQ_BATCH_TIMEOUT_MS_MAX,
						   10);
			break;
		case OPT_MAX_BATCH:
			cfg->sched.max_batch_size = parse_u32("max-batch-size", optarg, 1, LLMQ_MAX_BATCH_SIZE_MAX,
							   10);
			break;
		case OPT_MAX_CLIENT_REQS:
			cfg->max_client_requests = parse_u32("max-client-requests", optarg, 1,
							     65536, 10);
			break;
		case OPT_MAX_CQ_OVERFLOW:
			cfg->max_cq_overflow = parse_u32("max-cq-overflow", optarg, 1, 1 << 20, 10);
			break;
		case OPT_MAX_PROMPT:
			cfg->max_prompt_bytes = parse_u32("max-prompt-bytes", optarg, 1,
							  LLMQ_MAX_ARENA, 10);
			break;
		case OPT_MAX_TOKENS:
			cfg->max_tokens_limit = parse_u32("max-tokens-limit", optarg, 1, 1 << 24, 10);
			break;
		case OPT_SHUTDOWN_TIMEOUT:
			cfg->shutdown_timeout_ms = parse_u32("shutdown-timeout-ms", optarg, 0,
							     600000, 10);
			break;
		case OPT_HANDSHAKE_TIMEOUT:
			cfg->handshake_timeout_ms = parse_u32("handshake-timeout-ms", optarg, 1,
							      3600000, 10);
			break;
		case OPT_SOCKET_MODE:
			cfg->socket_mode = parse_u32("socket-mode", optarg, 0, 0777, 8);
			break;
		case OPT_POLL_US:
			cfg->poll_us = parse_u32("poll-us", optarg, 0, 100000, 10);
			break;
		case OPT_FOREGROUND:
			cfg->foreground = true;
			break;
		case 'v':
			log_verbose++;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case OPT_VERSION:
			printf("llmqd %s (ABI %d)\n", LLMQD_VERSION, LLMQ_ABI_VERSION);
			exit(0);
		case ':':
			fprintf(stderr, "llmqd: %s needs a value; see llmqd --help\n",
				argv[optind - 1]);
			exit(2);
		default:
			fprintf(stderr, "llmqd: unknown option '%s'; see llmqd --help\n",
				argv[optind - 1]);
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "llmqd: unexpected argument '%s'\n", argv[optind]);
		exit(2);
	}
	if (!cfg->engine.backend)
		cfg->engine.backend = "cpu";
	if (strcmp(cfg->engine.backend, "null") && !cfg->engine.model_path) {
		cfg->engine.model_path = model_default_path(default_model, sizeof(default_model));
		if (!cfg->engine.model_path) {
			fprintf(stderr, "llmqd: no --model given and the bundled model is not "
				"installed (%s) nor in a source tree beside this binary; pass "
				"--model FILE.gguf or --engine null\n", default_model);
			exit(2);
		}
	}
	if (!strcmp(cfg->engine.backend, "null") && cfg->engine.model_path) {
		fprintf(stderr, "llmqd: --model is for the cpu engine, not null\n");
		exit(2);
	}
	if (cfg->sched.max_num_batched_tokens < cfg->sched.max_num_seqs) {
		fprintf(stderr, "llmqd: --max-num-batched-tokens %u is below --max-num-seqs %u\n",
			cfg->sched.max_num_batched_tokens, cfg->sched.max_num_seqs);
		exit(2);
	}
	/*
	 * The ceilings llmqctl may raise the per-step limits to: the step's
	 * buffers (logits rows, the backend's activations) are sized for them
	 * once, here, and never reallocated under a running engine.
	 */
	if (!cfg->sched.max_num_seqs_limit)
		cfg->sched.max_num_seqs_limit = cfg->sched.max_num_seqs;
	if (!cfg->max_num_batched_tokens_limit)
		cfg->max_num_batched_tokens_limit = cfg->sched.max_num_batched_tokens;
	if (cfg->sched.max_num_seqs_limit < cfg->sched.max_num_seqs) {
		fprintf(stderr, "llmqd: --max-num-seqs-limit %u is below --max-num-seqs %u\n",
			cfg->sched.max_num_seqs_limit, cfg->sched.max_num_seqs);
		exit(2);
	}
	if (cfg->max_num_batched_tokens_limit < cfg->sched.max_num_batched_tokens) {
		fprintf(stderr, "llmqd: --max-num-batched-tokens-limit %u is below "
			"--max-num-batched-tokens %u\n", cfg->max_num_batched_tokens_limit,
			cfg->sched.max_num_batched_tokens);
		exit(2);
	}
	if (!cfg->sched.max_batch_size)
		cfg->sched.max_batch_size = cfg->sched.max_num_seqs;
	cfg->engine.kv_bytes = (size_t)cfg->kv_cache_mb << 20;
	cfg->engine.max_step_tokens = cfg->max_num_batched_tokens_limit;
	cfg->engine.null_delay_ns = cfg->null_delay_us * 1000ULL;
	cfg->sched.batch_timeout_ns = cfg->batch_timeout_ms * 1000000ULL;
}

/*
 * Fork into the background; the parent exits 0 only once the child listens,
 * so "llmqd && llmq generate ..." works.  Returns the pipe to report on.
 */
static int daemonize(void)
{
	int p[2], st;
	char c;
	pid_t pid;

	if (pipe(p) < 0) {
		perror("llmqd: pipe");
		exit(1);
	}
	pid = fork();
	if (pid < 0) {
		perror("llmqd: fork");
		exit(1);
	}
	if (pid > 0) {
		close(p[1]);
		if (read(p[0], &c, 1) == 1 && c == 0)
			exit(0);
		waitpid(pid, &st, 0);
		exit(1);
	}
	close(p[0]);
	setsid();
	return p[1];
}

static void detach_stdio(void)
{
	int fd = open("/dev/null", O_RDWR);

	if (fd < 0)
		return;
	dup2(fd, 0);
	dup2(fd, 1);
	dup2(fd, 2);
	if (fd > 2)
		close(fd);
}

/*
 * Each client holds a few descriptors here (its socket, eventfds, ring):
 * take every one the hard limit allows, as servers do, rather than stop
 * accepting at the soft limit's usual 1024.
 */
static void raise_nofile(void)
{
	/* The kernel's default fs.nr_open: an unlimited hard limit means this. */
	const rlim_t most = 1 << 20;
	struct rlimit rl;
	rlim_t want;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	want = rl.rlim_max < most ? rl.rlim_max : most;
	if (rl.rlim_cur >= want)
		return;
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		pr_warn("cannot raise the descriptor limit: %s", strerror(errno));
}

int main(int argc, char **argv)
{
	static struct llmqd d;
	sigset_t sigs;
	int err, ready = -1;
	char ok = 0, msg[512];

	d.cfg = (struct llmqd_config){
		.engine = { .block_size = BACKEND_DEFAULT_BLOCK_SIZE },
		.sched = {
			.max_num_seqs = 64,
			.max_num_batched_tokens = 128,
			.max_queued = 4096,
		},
		.batch_timeout_ms = 2,
		.kv_cache_mb = 256,
		.prefix_caching = true,
		.prefix_salt_uid = true,
		.max_client_requests = 256,
		.max_cq_overflow = 4096,
		.max_prompt_bytes = 1 << 20,
		.max_tokens_limit = 32768,
		.shutdown_timeout_ms = 5000,
		.handshake_timeout_ms = 5000,
		.socket_mode = 0666,
		.poll_us = 50,
	};
	parse_args(&d.cfg, argc, argv);
	d.cfg.socket_path = llmq_socket_path(d.cfg.socket_path);
	INIT_LIST_HEAD(&d.clients);
	INIT_LIST_HEAD(&d.dirty);
	d.listen_fd = -1;
	d.signal_fd = -1;
	d.dev_fd = -1;
	if (d.cfg.transport == TRANSPORT_AUTO)
		d.cfg.transport = access(LLMQ_DEVICE, F_OK) == 0 ? TRANSPORT_KERNEL : TRANSPORT_SHM;

	/*
	 * From here on SIGTERM, SIGINT and SIGUSR1 wait for the loop's signalfd:
	 * one that comes while we start up still means an orderly stop.
	 */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGUSR1);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	if (!d.cfg.foreground)
		ready = daemonize();

	err = io_uring_queue_init(1024, &d.ring, 0);
	if (err) {
		pr_err("io_uring_queue_init: %s", strerror(-err));
		return 1;
	}
	d.t_start = now_ns();
	err = serve_init(&d, msg, sizeof(msg));
	if (err) {
		pr_err("%s", msg);
		return 1;
	}
	raise_nofile();
	err = user_listen(&d);
	if (err)
		return 1;
	if (d.cfg.transport == TRANSPORT_KERNEL) {
		err = kernel_attach(&d);
		if (err)
			return 1;
		/* llmqctl over generic netlink; without it, over the socket. */
		admin_genl_open(&d);
		pr_info("serving %s, admin on %s: %s", LLMQ_DEVICE, d.cfg.socket_path,
			d.engine.desc);
	} else {
		pr_info("listening on %s: %s", d.cfg.socket_path, d.engine.desc);
	}
	/* Under systemd (Type=notify): clients may come now. */
	sd_notifyf("READY=1\nMAINPID=%d\nSTATUS=serving %s", (int)getpid(),
		   d.cfg.transport == TRANSPORT_KERNEL ? LLMQ_DEVICE : d.cfg.socket_path);
	if (ready >= 0) {
		(void)!write(ready, &ok, 1);
		close(ready);
		log_to_syslog();
		detach_stdio();
	}
	err = loop_run(&d);
	if (d.genl_sk)
		admin_genl_close(&d);
	user_close_listener(&d);
	serve_fini(&d);
	io_uring_queue_exit(&d.ring);
	pr_info("stopped");
	return err ? 1 : 0;
}
