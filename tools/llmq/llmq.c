// SPDX-License-Identifier: GPL-2.0
/*
 * llmq: the command-line client.  `llmq generate` runs one prompt through
 * the runtime and prints only the generated text; `llmq stats` prints the
 * runtime's counters.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libllmq.h"
#include "model_cmds.h"
#include "run_cmd.h"

#define MAX_STOPS 16

enum {
	OPT_SOCKET = 256,
	OPT_MAX_TOKENS,
	OPT_TEMPERATURE,
	OPT_TOP_P,
	OPT_TOP_K,
	OPT_MIN_P,
	OPT_SEED,
	OPT_REP_PENALTY,
	OPT_PRES_PENALTY,
	OPT_FREQ_PENALTY,
	OPT_PRIORITY,
	OPT_STOP,
	OPT_STOP_ID,
	OPT_IGNORE_EOS,
	OPT_STREAM,
	OPT_VERBOSE,
};

static const struct option gen_options[] = {
	{ "socket",		required_argument, NULL, OPT_SOCKET },
	{ "max-tokens",		required_argument, NULL, OPT_MAX_TOKENS },
	{ "temperature",	required_argument, NULL, OPT_TEMPERATURE },
	{ "top-p",		required_argument, NULL, OPT_TOP_P },
	{ "top-k",		required_argument, NULL, OPT_TOP_K },
	{ "min-p",		required_argument, NULL, OPT_MIN_P },
	{ "seed",		required_argument, NULL, OPT_SEED },
	{ "repetition-penalty",	required_argument, NULL, OPT_REP_PENALTY },
	{ "presence-penalty",	required_argument, NULL, OPT_PRES_PENALTY },
	{ "frequency-penalty",	required_argument, NULL, OPT_FREQ_PENALTY },
	{ "priority",		required_argument, NULL, OPT_PRIORITY },
	{ "stop",		required_argument, NULL, OPT_STOP },
	{ "stop-id",		required_argument, NULL, OPT_STOP_ID },
	{ "ignore-eos",		no_argument,	   NULL, OPT_IGNORE_EOS },
	{ "stream",		no_argument,	   NULL, OPT_STREAM },
	{ "verbose",		no_argument,	   NULL, OPT_VERBOSE },
	{ "help",		no_argument,	   NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: llmq generate [OPTIONS] PROMPT\n"
		"       llmq stats [--socket PATH]\n"
		"       llmq run [--model FILE] [--max-tokens N] [--temperature T] [--top-p P]\n"
		"                [--top-k K] [--min-p P] [--repetition-penalty R]\n"
		"                [--presence-penalty P] [--frequency-penalty F] [--seed S]\n"
		"                [--threads N] [--verbose] PROMPT\n"
		"       llmq model-info FILE.gguf\n"
		"       llmq tokenize --model FILE [--no-special] [--parse-special] TEXT\n"
		"       llmq detokenize --model FILE [--skip-special] ID...\n"
		"generate options:\n"
		"  --socket PATH              runtime socket (default $LLMQ_SOCKET or %s)\n"
		"  --max-tokens N             tokens to generate at most (default 16)\n"
		"  --temperature T            0 = greedy (default), up to 100\n"
		"  --top-p P                  nucleus sampling, (0, 1] (default 1)\n"
		"  --top-k K                  keep the K most likely tokens, 0 = off\n"
		"  --min-p P                  drop tokens below P x the top probability, [0, 1]\n"
		"  --seed S                   sampler seed\n"
		"  --repetition-penalty R     (0, 10], 1 = off\n"
		"  --presence-penalty P       [-2, 2]\n"
		"  --frequency-penalty F      [-2, 2]\n"
		"  --priority N               lower runs first (default 0)\n"
		"  --stop STRING              stop before this text (repeatable, up to %d)\n"
		"  --stop-id ID               stop at this token id (repeatable, up to %d)\n"
		"  --ignore-eos               keep going past end-of-sequence\n"
		"  --stream                   print text as it arrives\n"
		"  --verbose                  then the number of tokens generated, on stderr\n",
		LLMQ_DEFAULT_SOCKET, MAX_STOPS, MAX_STOPS);
}

static void die_flag(const char *flag, const char *val, const char *why)
{
	fprintf(stderr, "llmq: --%s: '%s' %s\n", flag, val, why);
	exit(2);
}

static float parse_float(const char *flag, const char *s, float lo, float hi)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (!*s || *end || errno || isnan(v))
		die_flag(flag, s, "is not a number");
	if (v < lo || v > hi) {
		char why[64];

		snprintf(why, sizeof(why), "is not in [%g, %g]", lo, hi);
		die_flag(flag, s, why);
	}
	return (float)v;
}

static uint64_t parse_uint(const char *flag, const char *s, uint64_t hi)
{
	unsigned long long v;
	char *end;

	errno = 0;
	if (!*s || *s == '-' || *s == '+')
		die_flag(flag, s, "is not a non-negative integer");
	v = strtoull(s, &end, 10);
	if (*end || errno || v > hi)
		die_flag(flag, s, "is not a non-negative integer in range");
	return v;
}

static int print_piece(uint32_t token, const char *text, size_t len, void *arg)
{
	(void)token;
	(void)arg;
	if (fwrite(text, 1, len, stdout) != len)
		return 1;
	fflush(stdout);
	return 0;
}

static int cmd_generate(int argc, char **argv)
{
	const char *stops[MAX_STOPS + 1] = { NULL };
	uint32_t stop_ids[MAX_STOPS];
	const char *sock = NULL;
	struct llmq_sampling sp;
	struct llmq_ring ring;
	int opt, nr_stops = 0, stream = 0, verbose = 0, res, err;

	llmq_sampling_init(&sp);
	sp.flags = 0;
	sp.stop_ids = stop_ids;
	while ((opt = getopt_long(argc, argv, "h", gen_options, NULL)) != -1) {
		switch (opt) {
		case OPT_SOCKET:
			/* Empty would mean "the default": another runtime, silently. */
			if (!*optarg)
				die_flag("socket", optarg, "is empty");
			sock = optarg;
			break;
		case OPT_MAX_TOKENS:
			sp.max_tokens = (uint32_t)parse_uint("max-tokens", optarg, UINT32_MAX);
			break;
		case OPT_TEMPERATURE:
			sp.temperature = parse_float("temperature", optarg, 0, 100);
			break;
		case OPT_TOP_P:
			sp.top_p = parse_float("top-p", optarg, 1e-6f, 1);
			break;
		case OPT_TOP_K:
			sp.top_k = (uint32_t)parse_uint("top-k", optarg, UINT32_MAX);
			break;
		case OPT_MIN_P:
			sp.min_p = parse_float("min-p", optarg, 0, 1);
			break;
		case OPT_SEED:
			sp.seed = parse_uint("seed", optarg, UINT64_MAX);
			break;
		case OPT_REP_PENALTY:
			sp.repetition_penalty = parse_float("repetition-penalty", optarg, 1e-6f, 10);
			break;
		case OPT_PRES_PENALTY:
			sp.presence_penalty = parse_float("presence-penalty", optarg, -2, 2);
			break;
		case OPT_FREQ_PENALTY:
			sp.frequency_penalty = parse_float("frequency-penalty", optarg, -2, 2);
			break;
		case OPT_PRIORITY: {
			char *end;
			long v;

			errno = 0;
			v = strtol(optarg, &end, 10);
			if (!*optarg || *end || errno || v < INT32_MIN || v > INT32_MAX)
				die_flag("priority", optarg, "is not a 32-bit integer");
			sp.priority = (int32_t)v;
			break;
		}
		case OPT_STOP:
			if (nr_stops == MAX_STOPS)
				die_flag("stop", optarg, "is one stop string too many");
			if (!*optarg)
				die_flag("stop", optarg, "is empty");
			stops[nr_stops++] = optarg;
			sp.stop = stops;
			break;
		case OPT_STOP_ID:
			if (sp.nr_stop_ids == MAX_STOPS)
				die_flag("stop-id", optarg, "is one stop id too many");
			stop_ids[sp.nr_stop_ids++] = (uint32_t)parse_uint("stop-id", optarg,
									  UINT32_MAX);
			break;
		case OPT_IGNORE_EOS:
			sp.flags |= LLMQ_SQE_IGNORE_EOS;
			break;
		case OPT_STREAM:
			stream = 1;
			break;
		case OPT_VERBOSE:
			verbose = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "llmq generate: exactly one PROMPT argument is needed\n");
		return 2;
	}
	err = llmq_queue_init(&ring, sock, NULL);
	if (err) {
		fprintf(stderr, "llmq: cannot reach the runtime at %s: %s\n",
			llmq_socket_path(sock), strerror(-err));
		return 1;
	}
	if (stream)
		sp.flags |= LLMQ_SQE_STREAM;
	res = llmq_generate(&ring, argv[optind], &sp, print_piece, NULL);
	llmq_queue_exit(&ring);
	if (res < 0) {
		fprintf(stderr, "\nllmq: request failed: %s\n", strerror(-res));
		return 1;
	}
	if (isatty(STDOUT_FILENO))
		putchar('\n');
	if (verbose) {
		fflush(stdout);
		fprintf(stderr, "llmq: %d tokens generated\n", res);
	}
	return 0;
}

static int cmd_stats(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = NULL;
	struct llmq_stats st;
	int opt, err;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt != OPT_SOCKET) {
			usage(stderr);
			return 2;
		}
		if (!*optarg)
			die_flag("socket", optarg, "is empty");
		sock = optarg;
	}
	if (optind < argc) {
		fprintf(stderr, "llmq: stats: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	err = llmq_get_stats(sock, &st);
	if (err) {
		fprintf(stderr, "llmq: cannot read stats from %s: %s\n", llmq_socket_path(sock),
			strerror(-err));
		return 1;
	}
#define P(f) printf("%-22s %" PRIu64 "\n", #f, (uint64_t)st.f)
	P(clients_active);
	P(clients_total);
	P(clients_broken);
	P(requests_active);
	P(requests_waiting);
	P(requests_total);
	P(requests_failed);
	P(requests_cancelled);
	P(steps);
	P(tokens_generated);
	P(cqes_posted);
	P(cqes_overflowed);
	P(overflow_now);
	P(wakeups);
	P(doorbells);
	P(requests_running);
	P(kv_blocks_used);
	P(kv_blocks_total);
	P(preemptions);
	P(prefix_cache_queries);
	P(prefix_cache_hits);
	P(prompt_tokens);
	P(ttft_p50_us);
	P(ttft_p99_us);
	P(itl_p50_us);
	P(itl_p99_us);
	P(e2e_p50_us);
	P(e2e_p99_us);
	P(queue_p50_us);
	P(queue_p99_us);
	P(graph_steps);
	P(device_sampled_tokens);
	P(steps_ahead);
#undef P
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "generate"))
		return cmd_generate(argc - 1, argv + 1);
	if (!strcmp(argv[1], "stats"))
		return cmd_stats(argc - 1, argv + 1);
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "model-info"))
		return cmd_model_info(argc - 1, argv + 1);
	if (!strcmp(argv[1], "tokenize"))
		return cmd_tokenize(argc - 1, argv + 1);
	if (!strcmp(argv[1], "detokenize"))
		return cmd_detokenize(argc - 1, argv + 1);
	fprintf(stderr, "llmq: unknown command '%s'; see llmq --help\n", argv[1]);
	return 2;
}
