/*
 * main.c — command dispatch: `deftree [COMMAND] [ARGS]`.
 * With no command, the interactive front end runs on the default model.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "common.h"

static int cmd_help(int argc, char **argv);

static const struct dt_command commands[] = {
	/* COMMANDS: one line each, in the order `deftree help` lists them */
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

int main(int argc, char **argv)
{
	if (argc < 2)
		return cmd_help(0, NULL);
	const char *name = argv[1];
	if (!strcmp(name, "-h") || !strcmp(name, "--help"))
		return cmd_help(0, NULL);
	if (!strcmp(name, "--version")) {
		printf("deftree %s\n", PACKAGE_VERSION);
		return 0;
	}
	for (size_t i = 0; i < DT_ARRAY_LEN(commands); i++)
		if (!strcmp(name, commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "deftree: unknown command '%s' (try `deftree help`)\n", name);
	return 2;
}
