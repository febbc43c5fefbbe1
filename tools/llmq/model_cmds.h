/* SPDX-License-Identifier: GPL-2.0 */
/*
 * llmq's in-process model commands.
 */
#ifndef LLMQ_MODEL_CMDS_H
#define LLMQ_MODEL_CMDS_H

int cmd_model_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);

#endif /* LLMQ_MODEL_CMDS_H */
