/*
 * main.c — command dispatch: `deftree [COMMAND] [ARGS]`.
 * With no command (or options only), the terminal playground (`tui`) runs on
 * the default model when deftree was built with it and stdin and stdout are
 * a terminal; otherwise the line-based chat (`chat`) does.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "common.h"

static int cmd_help(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_tree(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_mkmodel(int argc, char **argv);
#ifdef HAVE_TUI
int cmd_tui(int argc, char **argv);
#endif

static const struct dt_command commands[] = {
	/* COMMANDS: one line each, in the order `deftree help` lists them */
#ifdef HAVE_TUI
	{ "tui", cmd_tui, "the terminal playground: grow, fork and inspect a token tree live (what `deftree` runs)" },
#endif
	{ "generate", cmd_generate, "stream the answer to one prompt, then its timings" },
	{ "chat", cmd_chat, "line-based interactive chat (what `deftree` runs without a terminal or TUI)" },
	{ "tree", cmd_tree, "grow a token tree headless (sample-n, beam, forks): tree text, metrics, JSON/DOT" },
	{ "replay", cmd_replay, "replay a tree workload shape (reasoning, speculative, few-shot): IO and time per step" },
	{ "bench", cmd_bench, "measurements: cpu (tokens/s beside llama.cpp)" },
	{ "mkmodel", cmd_mkmodel, "write a synthetic GGUF model (random weights, any shape)" },
	{ "inspect", cmd_inspect, "print a GGUF file: header, metadata, tensor table" },
	{ "help", cmd_help, "this list" },
};

static int cmd_help(int argc, char **argv)
{
	printf("usage: deftree [COMMAND] [ARGS...]\n\n"
	       "With no command, deftree opens the interactive playground on the default model\n"
	       "(%s).\n\ncommands:\n", dt_default_model_path());
	for (size_t i = 0; i < DT_ARRAY_LEN(commands); i++)
		printf("  %-10s %s\n", commands[i].name, commands[i].summary);
	printf("\n`deftree COMMAND --help` describes each one.\n");
	return 0;
}

/* no command, or options only (deftree -m PATH): the playground on a
 * terminal, the line-based chat otherwise (pipes, scripts, --disable-tui) */
static int run_default(int argc, char **argv)
{
#ifdef HAVE_TUI
	if (isatty(STDIN_FILENO) && isatty(STDOUT_FILENO))
		return cmd_tui(argc, argv);
#endif
	return cmd_chat(argc, argv);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return run_default(argc, argv);
	const char *name = argv[1];
	if (!strcmp(name, "-h") || !strcmp(name, "--help"))
		return cmd_help(0, NULL);
	if (!strcmp(name, "--version")) {
		printf("deftree %s\n", PACKAGE_VERSION);
		return 0;
	}
	if (name[0] == '-')
		return run_default(argc, argv);
	for (size_t i = 0; i < DT_ARRAY_LEN(commands); i++)
		if (!strcmp(name, commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "deftree: unknown command '%s' (try `deftree help`)\n", name);
	return 2;
}
