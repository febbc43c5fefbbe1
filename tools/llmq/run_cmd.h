/* SPDX-License-Identifier: GPL-2.0 */
/*
 * llmq run: the engine in-process, one prompt, no daemon.
 */
#ifndef LLMQ_RUN_CMD_H
#define LLMQ_RUN_CMD_H

int cmd_run(int argc, char **argv);

#endif /* LLMQ_RUN_CMD_H */
