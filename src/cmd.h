/*
 * cmd.h — the subcommands of the deftree program.  Each lives in its own
 * src/cmd_<name>.c, takes the arguments after its name, prints its own
 * usage on bad arguments, and returns the process exit status.
 */
#ifndef DT_CMD_H
#define DT_CMD_H

struct dt_command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary; /* one line for `deftree help` */
};

#endif
