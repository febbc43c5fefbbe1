# SPDX-License-Identifier: GPL-2.0
#
# llmq top-level build.  Userspace goes to $(O) (default build/); the kernel
# module is built through Kbuild by the kernel's own make (make modules).
#
#   make              all userspace: llmqd, llmq, libllmq (.a, .so, .pc)
#   make check        install test dependencies, run every test twice:
#                     plain and under ASan+UBSan, and the module's QEMU stage
#                     once (make vm-check); ends "N passed, N failed"
#   make modules      driver/llmq.ko, KDIR= the kernel headers
#   make vm-bench     round trips through /dev/llmq and the socket, in QEMU
#   make demo         start llmqd on a private socket, stream from clients
#   make bench-ring   ring round trip and throughput beside loopback HTTP
#   make bench        the standard llmq-bench scenario on the embedded default
#   make model        retrain the bundled model (models/) from Debian packages
#   make install      PREFIX=/usr/local DESTDIR=

O		?= build
PREFIX		?= /usr/local
LIBDIR		?= $(PREFIX)/lib
INCLUDEDIR	?= $(PREFIX)/include
BINDIR		?= $(PREFIX)/bin
DATADIR		?= $(PREFIX)/share
MODELDIR	:= $(DATADIR)/llmq/models
VERSION		:= 0.1.0
SOVERSION	:= 0

CC		?= cc
OPT		?= -O2
CFLAGS_BASE	:= -std=gnu11 -g $(OPT) -Wall -Wextra -Werror -fPIC \
		   -D_GNU_SOURCE -Iinclude/uapi -Itools/lib/llmq -DLLMQ_MODEL_DIR='"$(MODELDIR)"' \
		   -DLLMQ_PLUGIN_DIR='"$(LIBDIR)/llmq"' -DLLMQ_SRC_MODEL_DIR='"$(CURDIR)/models"'
ifeq ($(SAN),1)
CFLAGS_BASE	+= -fsanitize=address,undefined -fno-omit-frame-pointer \
		   -fno-sanitize-recover=undefined
LDFLAGS_SAN	:= -fsanitize=address,undefined
endif
CFLAGS_ALL	= $(CFLAGS_BASE) $(CFLAGS)
LIBS_URING	:= $(shell pkg-config --libs liburing 2>/dev/null || echo -luring)
LIBS_CMOCKA	:= $(shell pkg-config --libs cmocka 2>/dev/null || echo -lcmocka)
LIBS_JSON	:= $(shell pkg-config --libs json-c 2>/dev/null || echo -ljson-c)
LIBS_PCRE2	:= $(shell pkg-config --libs libpcre2-8 2>/dev/null || echo -lpcre2-8)
LIBS_TOK	:= $(LIBS_PCRE2) -lunistring	# libunistring has no .pc
CFLAGS_NL	:= $(shell pkg-config --cflags libnl-genl-3.0 2>/dev/null || echo -I/usr/include/libnl3)
LIBS_NL		:= $(shell pkg-config --libs libnl-genl-3.0 2>/dev/null || echo -lnl-genl-3 -lnl-3)

LIB_SRCS	:= tools/lib/llmq/setup.c tools/lib/llmq/queue.c \
		   tools/lib/llmq/prep.c tools/lib/llmq/generate.c \
		   tools/lib/llmq/uds.c
RT_SRCS		:= runtime/llmqd.c runtime/loop.c runtime/transport_user.c runtime/transport_kernel.c \
		   runtime/client.c runtime/request.c runtime/serve.c runtime/metrics.c \
		   runtime/sqe_check.c runtime/log.c runtime/admin.c runtime/admin_genl.c
MODEL_SRCS	:= runtime/gguf.c runtime/gguf_write.c runtime/dtype.c runtime/model.c
TOK_SRCS	:= runtime/tokenizer.c runtime/tokenizer_spm.c runtime/tokenizer_bpe.c \
		   runtime/tokenizer_pretok.c runtime/tokenizer_utf8.c
MKMODEL_SRCS	:= tools/mkmodel/mkmodel.c tools/mkmodel/hf_tokenizer.c tools/mkmodel/hf_model.c
CLI_SRCS	:= tools/llmq/llmq.c tools/llmq/model_cmds.c tools/llmq/run_cmd.c
BENCH_SRCS	:= tools/ringbench/ringbench.c

obj		= $(patsubst %.c,$(O)/obj/%.o,$(1))
LIB_OBJS	:= $(call obj,$(LIB_SRCS))
RT_OBJS		:= $(call obj,$(RT_SRCS))

CPU_SRCS	:= runtime/cpu/threadpool.c runtime/cpu/cpu_features.c runtime/cpu/matmul.c \
		   runtime/cpu/matmul_portable.c runtime/cpu/matmul_avx2.c \
		   runtime/cpu/matmul_avx512.c runtime/cpu/ops.c runtime/cpu/attention.c \
		   runtime/cpu/attn_portable.c runtime/cpu/attn_avx2.c runtime/cpu/attn_avx512.c
CPU_OBJS	:= $(call obj,$(CPU_SRCS))
# The AVX-512 kernels once more over SIMDe's emulation, so machines without
# AVX-512 still test that code path.
ifneq ($(wildcard /usr/include/simde/x86/avx512.h),)
CPU_SIMDE_OBJ	:= $(O)/obj/runtime/cpu/matmul_avx512_simde.o
endif
# The 16-lane attention kernel built for AVX2 too, for the same reason.
CPU_EMU_OBJ	:= $(O)/obj/runtime/cpu/attn_avx512_emu.o
MODEL_OBJS	:= $(call obj,$(MODEL_SRCS))
TOK_OBJS	:= $(call obj,$(TOK_SRCS))
TOKREF_OBJS	:= $(call obj,tests/tokenizer/tokref.c)
# The CPU engine: the forward step, the kernels under it, the model it reads.
ENGINE_OBJS	:= $(call obj,runtime/cpu/backend_cpu.c runtime/backend.c) $(CPU_OBJS) \
		   $(MODEL_OBJS)
# What llmqd serves with: engines, scheduler, block manager, sampler, tokenizer.
SERVE_OBJS	:= $(call obj,runtime/engine.c runtime/backend_null.c runtime/scheduler.c \
		   runtime/kv_blocks.c runtime/sampler.c) $(ENGINE_OBJS) $(TOK_OBJS)

# The CUDA backend (cuda/), when nvcc is found: /usr/local/cuda first, then
# $PATH; NVCC= builds without it. Its kernels are built for sm_80 and sm_90
# with sm_90 PTX, once: the ASan build ($(O)-asan) links the plain build's
# kernel objects (CUDA_O), which no sanitizer touches. The backend, cudart
# and cuBLAS make a plugin, $(O)/lib/llmq/backend-cuda.so, that llmqd and
# llmq load for --engine cuda (runtime/backend_cuda_load.c): they start on
# machines without the CUDA libraries. Without nvcc they link a stub whose
# --engine cuda explains itself.
ifeq ($(origin NVCC),undefined)
NVCC		:= $(firstword $(wildcard /usr/local/cuda/bin/nvcc) \
			       $(shell command -v nvcc 2>/dev/null))
endif
CUDA_KERNELS	:= cuda/kernels/embed.cu cuda/kernels/feed.cu cuda/kernels/norm.cu \
		   cuda/kernels/bias.cu cuda/kernels/rope.cu cuda/kernels/kv_store.cu \
		   cuda/kernels/attention.cu cuda/kernels/swiglu.cu cuda/kernels/sample.cu \
		   cuda/kernels/quant.cu
ifneq ($(NVCC),)
CUDA_HOME	:= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_O		:= $(patsubst %-asan,%,$(O))
CUDA_ARCH	:= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
		   -gencode arch=compute_90,code=compute_90
NVCCFLAGS	:= -std=c++17 -O3 -g $(CUDA_ARCH) -Werror all-warnings \
		   -Xcompiler -fPIC,-Wall,-Wextra
CUDA_KOBJS	:= $(patsubst %.cu,$(CUDA_O)/obj/%.o,$(CUDA_KERNELS))
CUDA_OBJS	:= $(call obj,cuda/backend_cuda.c) $(CUDA_KOBJS)
LIBS_CUDA	:= -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart -lstdc++
CFLAGS_CUDA	:= -I$(CUDA_HOME)/include -DLLMQ_HAVE_CUDA
CUDA_PLUGIN	:= $(O)/lib/llmq/backend-cuda.so
CUDA_LOADER	:= $(call obj,runtime/backend_cuda_load.c)
else
CUDA_OBJS	:= $(call obj,cuda/backend_cuda_none.c)
CUDA_LOADER	:= $(CUDA_OBJS)
ifeq ($(MAKELEVEL),0)
$(info llmq: nvcc not found: building without the CUDA backend (NVCC=/path/to/nvcc adds it))
endif
endif

BINS		:= $(O)/bin/llmqd $(O)/bin/llmq $(O)/bin/llmq-ringbench $(O)/bin/llmq-mkmodel
LIBA		:= $(O)/lib/libllmq.a
LIBSO		:= $(O)/lib/libllmq.so.$(VERSION)
PCFILE		:= $(O)/lib/pkgconfig/libllmq.pc

TESTS		:= $(O)/tests/test_ring $(O)/tests/test_sqe $(O)/tests/test_live \
		   $(O)/tests/test_gguf $(O)/tests/test_sampler $(O)/tests/test_tokenizer \
		   $(O)/tests/test_kernels $(O)/tests/test_engine $(O)/tests/test_kv_blocks \
		   $(O)/tests/test_scheduler $(O)/tests/test_serve

.PHONY: all check test demo bench-ring install clean deps test-deps fuzz test-oracles \
	bench-tokenizer bench-kernels bench-engine
all: $(BINS) $(LIBA) $(LIBSO) $(PCFILE) $(CUDA_PLUGIN)

# Tools and tests built on the runtime's model code see its headers.
$(O)/obj/tools/mkmodel/%.o $(O)/obj/tools/llmq/%.o $(O)/obj/tests/%.o: CFLAGS_ALL += -Iruntime -Itests/lib

$(O)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(LIBA): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(LIBSO): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,libllmq.so.$(SOVERSION) $(LDFLAGS_SAN) -o $@ $^
	ln -sf libllmq.so.$(VERSION) $(O)/lib/libllmq.so.$(SOVERSION)
	ln -sf libllmq.so.$(SOVERSION) $(O)/lib/libllmq.so

$(PCFILE): tools/lib/llmq/libllmq.pc.in Makefile
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

$(O)/bin/llmqd: $(RT_OBJS) $(SERVE_OBJS) $(CUDA_LOADER) $(LIBA) | $(CUDA_PLUGIN)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LIBS_URING) $(LIBS_TOK) $(LIBS_NL) -ldl -lpthread -lm

$(O)/bin/llmq: $(call obj,$(CLI_SRCS)) $(ENGINE_OBJS) $(TOK_OBJS) \
	       $(call obj,runtime/sampler.c) $(CUDA_LOADER) $(LIBA) | $(CUDA_PLUGIN)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LIBS_TOK) -ldl -lpthread -lm

ifneq ($(NVCC),)
# Self-contained (--no-undefined but under ASan, whose runtime the program
# brings) and bound to its own symbols (-Bsymbolic).
$(CUDA_PLUGIN): $(call obj,cuda/plugin.c runtime/dtype.c runtime/backend.c) $(CUDA_OBJS)
	@mkdir -p $(dir $@)
	$(CC) -shared $(LDFLAGS_SAN) $(if $(SAN),,-Wl,--no-undefined) -Wl,-Bsymbolic -o $@ $^ \
		$(LIBS_CUDA) -lm
$(call obj,cuda/plugin.c): CFLAGS_ALL += $(CFLAGS_CUDA)

TESTS		+= $(O)/tests/test_plugin
$(O)/tests/test_plugin: $(call obj,tests/unit/test_plugin.c) | $(O)/bin/llmq $(O)/bin/llmqd \
			$(CUDA_PLUGIN) $(LIBSO)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $(filter %.o,$^) $(LIBS_CMOCKA)
endif

$(O)/bin/llmq-mkmodel: $(call obj,$(MKMODEL_SRCS)) $(MODEL_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LIBS_JSON) -lm

$(O)/bin/llmq-ringbench: $(call obj,$(BENCH_SRCS)) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ -lm

$(O)/tests/test_ring: $(call obj,tests/unit/test_ring.c) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LIBS_CMOCKA)

$(O)/tests/test_sqe: $(call obj,tests/unit/test_sqe.c runtime/sqe_check.c)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LIBS_CMOCKA)

$(O)/tests/test_tokenizer: $(call obj,tests/unit/test_tokenizer.c) $(TOKREF_OBJS) $(TOK_OBJS) \
			   $(MODEL_OBJS) | $(O)/bin/llmq-mkmodel
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $(filter %.o,$^) $(LIBS_TOK) $(LIBS_JSON) $(LIBS_CMOCKA) -lm

$(O)/tests/bench_tokenizer: $(call obj,tests/tokenizer/bench_tokenizer.c) $(TOKREF_OBJS) \
			    $(TOK_OBJS) $(MODEL_OBJS) | $(O)/bin/llmq-mkmodel
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $(filter %.o,$^) $(LIBS_TOK) $(LIBS_JSON) -lm

$(O)/obj/runtime/cpu/matmul_avx512_simde.o: runtime/cpu/matmul_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Wno-psabi -mavx2 -mfma -mf16c -DLLMQ_CPU_SIMDE -MMD -MP -c $< -o $@

$(O)/obj/runtime/cpu/attn_avx512_emu.o: runtime/cpu/attn_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Wno-psabi -DLLMQ_CPU_EMU -MMD -MP -c $< -o $@

$(O)/tests/test_kernels: $(call obj,tests/unit/test_kernels.c) $(CPU_OBJS) $(CPU_SIMDE_OBJ) \
			 $(CPU_EMU_OBJ) \
			 $(call obj,runtime/dtype.c)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LIBS_CMOCKA) -lpthread -lm

$(O)/tests/bench_kernels: $(call obj,tests/unit/bench_kernels.c tests/unit/membw.c) $(CPU_OBJS) \
			  $(call obj,runtime/dtype.c)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ -lpthread -lm

# CPU kernels: weight bytes streamed per second beside memcpy, per dtype and ISA.
bench-kernels: $(O)/tests/bench_kernels
	$(O)/tests/bench_kernels

# The bundled model: provenance, golden continuations, tokenizer, make demo.
TESTS		+= $(O)/tests/test_model
$(O)/tests/test_model: $(call obj,tests/unit/test_model.c) $(ENGINE_OBJS) $(TOK_OBJS) \
			| $(O)/bin/llmq $(O)/bin/llmqd
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $(filter %.o,$^) $(LIBS_CMOCKA) $(LIBS_JSON) $(LIBS_TOK) \
		-lpthread -lm

$(O)/tests/test_engine: $(call obj,tests/unit/test_engine.c) $(ENGINE_OBJS) \
			| $(O)/bin/llmq-mkmodel $(O)/bin/llmq
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $(filter %.o,$^) $(LIBS_CMOCKA) -lpthread -lm

$(O)/tests/bench_engine: $(call obj,tests/unit/bench_engine.c tests/unit/membw.c) $(ENGINE_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ -lpthread -lm

# Decode and prefill of a 100m model beside the copy-bandwidth floor.
bench-engine: $(O)/bin/llmq-mkmodel $(O)/tests/bench_engine
	scripts/bench-engine.sh $(O)

$(O)/tests/test_sampler: $(call obj,tests/unit/test_sampler.c runtime/sampler.c)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LIBS_CMOCKA) -lm

$(O)/tests/test_kv_blocks: $(call obj,tests/unit/test_kv_blocks.c runtime/kv_blocks.c)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LIBS_CMOCKA)

$(O)/tests/test_scheduler: $(call obj,tests/unit/test_scheduler.c runtime/scheduler.c \
			    runtime/kv_blocks.c)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LIBS_CMOCKA)

$(O)/tests/test_gguf: $(call obj,tests/unit/test_gguf.c) $(MODEL_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LIBS_CMOCKA) -lm

$(O)/tests/test_live: $(call obj,tests/live/test_live.c tests/live/harness.c \
		      tests/lib/requests.c) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LIBS_CMOCKA)

$(O)/tests/test_serve: $(call obj,tests/live/test_serve.c tests/live/harness.c) $(LIBA) \
		       | $(O)/bin/llmq-mkmodel $(O)/bin/llmqd
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $(filter %.o %.a,$^) $(LIBS_CMOCKA)

# ---- llmqctl (tools/llmqctl/) and its test: the control plane's client ------
# The runtime's side is runtime/admin.c and, over llmq.ko's generic netlink
# family, runtime/admin_genl.c (both in RT_SRCS).
LLMQCTL_SRCS	:= tools/llmqctl/llmqctl.c runtime/metrics.c
BINS		+= $(O)/bin/llmqctl
TESTS		+= $(O)/tests/test_llmqctl

all: $(O)/bin/llmqctl

$(O)/obj/runtime/admin.o $(O)/obj/runtime/admin_genl.o $(O)/obj/tools/llmqctl/%.o: \
	CFLAGS_ALL += $(CFLAGS_NL) -Iruntime

$(O)/bin/llmqctl: $(call obj,$(LLMQCTL_SRCS))
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LIBS_NL) $(LIBS_JSON) -lm

$(O)/tests/test_llmqctl: $(call obj,tests/live/test_llmqctl.c tests/live/harness.c tests/lib/requests.c \
			 runtime/metrics.c) $(LIBA) | $(O)/bin/llmqctl $(O)/bin/llmqd
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $(filter %.o %.a,$^) $(LIBS_JSON) $(LIBS_CMOCKA) -lpthread -lm

# Who may change llmqd over its admin socket (admin.c asks runtime/peercred.c);
# systemd's readiness protocol.
$(O)/bin/llmqd: $(call obj,runtime/peercred.c runtime/sd_notify.c)

# ---- llmq-bench (tools/llmq-bench/) and its tests: owned by that tool --------
LLMQ_BENCH_SRCS	:= tools/llmq-bench/main.c tools/llmq-bench/workload.c tools/llmq-bench/client.c \
		   tools/llmq-bench/stats.c tools/llmq-bench/report.c tools/llmq-bench/plot.c
BINS		+= $(O)/bin/llmq-bench
TESTS		+= $(O)/tests/test_bench $(O)/tests/test_bench_live

# all's prerequisites were expanded before the += above.
all: $(O)/bin/llmq-bench

$(O)/bin/llmq-bench: $(call obj,$(LLMQ_BENCH_SRCS)) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LIBS_JSON) -lm -lpthread

$(O)/tests/test_bench: $(call obj,tests/unit/test_bench.c tools/llmq-bench/stats.c \
			tools/llmq-bench/workload.c tools/llmq-bench/plot.c)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LIBS_JSON) $(LIBS_CMOCKA) -lm

$(O)/tests/test_bench_live: $(call obj,tests/live/test_bench_live.c tests/live/harness.c) $(LIBA) \
			    | $(O)/bin/llmq-bench $(O)/bin/llmqd
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $(filter %.o %.a,$^) $(LIBS_JSON) $(LIBS_CMOCKA) -lutil -lpthread

# The serving curve of a 100m model: llmq-bench --sweep 1,8,32 against llmqd.
.PHONY: bench-serve
bench-serve: all $(O)/bin/llmq-bench $(O)/bin/llmq-mkmodel
	scripts/bench-serve.sh $(O)

# The standard scenario on the embedded default (models/kjv-11m-q8_0.gguf on
# the CPU engine; the null engine until that model exists): the sweep table,
# and its plot in $(O)/bench.png.
.PHONY: bench
bench: all $(O)/bin/llmq-bench
	scripts/bench.sh $(O)
# ---- end of llmq-bench ----------------------------------------------------------

# ---- llmq.ko (driver/, Kbuild) and its QEMU stage: the kernel transport ------
# make modules builds driver/llmq.ko against KDIR, by default the newest
# installed Debian 6.1 headers (never the running kernel's).  make vm-check
# lints the module (W=1, sparse, checkpatch --strict) and runs tests/vm/ in
# the matching Debian kernel under qemu-system-x86_64 -accel tcg.
KDIR		?= $(shell scripts/vm-kernel.sh --kdir 2>/dev/null)
.PHONY: modules modules-clean vm-check
modules:
	@test -n "$(KDIR)" || { echo "llmq: no 6.1 headers; make deps or KDIR=..."; exit 1; }
	env -u MAKEFLAGS -u MAKELEVEL $(MAKE) -C $(KDIR) M=$(CURDIR) modules

# (Our O=, CC=, CFLAGS= are not the kernel's: MAKEFLAGS stays behind.)
modules-clean:
	@test -z "$(KDIR)" || env -u MAKEFLAGS -u MAKELEVEL $(MAKE) -C $(KDIR) M=$(CURDIR) clean

vm-check: all $(O)/tests/test_live
	scripts/vm-check.sh $(O)

# The same boot, then round trips through /dev/llmq beside the socket transport.
.PHONY: vm-bench
vm-bench: all $(O)/tests/test_live
	VM_BENCH=1 VM_SMP=1 VM_TIMEOUT=600 scripts/vm-check.sh $(O)

# The module's sources as DKMS wants them, and the udev rule (group llmq).
UDEVDIR		?= /lib/udev/rules.d
.PHONY: dkms-src
dkms-src:
	install -d $(DESTDIR)/usr/src/llmq-$(VERSION)/driver \
		$(DESTDIR)/usr/src/llmq-$(VERSION)/include/uapi/linux $(DESTDIR)$(UDEVDIR)
	install -m 644 driver/dkms.conf Kbuild $(DESTDIR)/usr/src/llmq-$(VERSION)
	install -m 644 driver/Kbuild driver/main.c driver/genl.c driver/llmq_internal.h \
		$(DESTDIR)/usr/src/llmq-$(VERSION)/driver
	install -m 644 include/uapi/linux/llmq.h \
		$(DESTDIR)/usr/src/llmq-$(VERSION)/include/uapi/linux
	install -m 644 driver/60-llmq.rules $(DESTDIR)$(UDEVDIR)

# make check runs the stage as a test of the plain build (not twice).
ifneq ($(SAN),1)
TESTS		+= $(O)/tests/test_vm
endif
$(O)/tests/test_vm: scripts/vm-check.sh
	@mkdir -p $(dir $@)
	printf '#!/bin/sh\nexec "%s/scripts/vm-check.sh" "%s"\n' "$(CURDIR)" "$(abspath $(O))" >$@
	chmod +x $@
# ---- end of llmq.ko ---------------------------------------------------------------

# ---- the CUDA backend (cuda/): kernels, their tests, GPU checks -------------
# test_cuda runs everywhere: without a GPU its kernel tests skip, and it
# checks the fatbin and the --engine cuda errors. On a GPU machine:
#   make check-cuda        test_cuda alone (kernels, forward, batching)
#   make cuda-sanitize     its kernel tests under compute-sanitizer memcheck, racecheck
#   make bench-cuda        scripts/bench-cuda.sh (issue 10's table)
TESTS		+= $(O)/tests/test_cuda

$(O)/obj/cuda/backend_cuda.o $(O)/obj/tests/unit/test_cuda.o: CFLAGS_ALL += $(CFLAGS_CUDA)

ifneq ($(NVCC),)
$(CUDA_O)/obj/cuda/%.o: cuda/%.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -MMD -MP -c $< -o $@
endif

$(O)/tests/test_cuda: $(call obj,tests/unit/test_cuda.c runtime/sampler.c) $(CUDA_OBJS) \
		      $(ENGINE_OBJS) | $(O)/bin/llmq-mkmodel $(O)/bin/llmq $(O)/bin/llmqd
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $(filter %.o,$^) $(LIBS_CMOCKA) $(LIBS_CUDA) -lpthread -lm

$(O)/tests/bench_cuda: $(call obj,tests/unit/bench_cuda.c) $(CUDA_OBJS) $(ENGINE_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LIBS_CUDA) -lpthread -lm

$(O)/obj/tests/unit/bench_cuda.o: CFLAGS_ALL += $(CFLAGS_CUDA)

# test_cuda_emu: test_cuda's kernel and backend tests without a GPU, the
# kernels compiled as C++ over tests/cuda_emu/ (fibers for threads, cudart
# and cuBLAS emulated on host memory, so ASan sees the kernels' accesses).
# It needs a C++ compiler ($(CXX)); nvcc itself uses one.
ifneq ($(and $(NVCC),$(shell command -v $(CXX) 2>/dev/null)),)
TESTS		+= $(O)/tests/test_cuda_emu
# -fno-strict-aliasing: device code reads shared and global memory through
# the types it needs (16-byte vectors, __nv_bfloat16 over uint16_t), as
# CUDA allows and host C++ does not.
CXXFLAGS_EMU	:= -std=c++17 -g $(OPT) -Wall -Wextra -Werror -Wno-unknown-pragmas -fPIC \
		   -fno-strict-aliasing -DLLMQ_CUDA_EMU -I$(CUDA_HOME)/include
ifeq ($(SAN),1)
CXXFLAGS_EMU	+= -fsanitize=address,undefined -fno-omit-frame-pointer \
		   -fno-sanitize-recover=undefined
endif
CUDA_EMU_OBJS	:= $(patsubst cuda/kernels/%.cu,$(O)/obj/cuda-emu/%.o,$(CUDA_KERNELS)) \
		   $(O)/obj/tests/cuda_emu/cuda_emu.o

$(O)/obj/cuda-emu/%.o: cuda/kernels/%.cu
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS_EMU) -x c++ -include tests/cuda_emu/cuda_emu.h -MMD -MP -c $< -o $@

$(O)/obj/tests/cuda_emu/cuda_emu.o: tests/cuda_emu/cuda_emu.cc
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS_EMU) -MMD -MP -c $< -o $@

$(O)/obj/tests/unit/test_cuda_emu.o: tests/unit/test_cuda.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(CFLAGS_CUDA) -DLLMQ_CUDA_EMU -MMD -MP -c $< -o $@

$(O)/tests/test_cuda_emu: $(O)/obj/tests/unit/test_cuda_emu.o \
			  $(call obj,cuda/backend_cuda.c runtime/sampler.c) $(CUDA_EMU_OBJS) \
			  $(ENGINE_OBJS) | $(O)/bin/llmq-mkmodel
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $(filter %.o,$^) $(LIBS_CMOCKA) -lstdc++ -lpthread -lm

# The CUDA backend over the emulator as a plugin: llmqd --engine cuda in the
# live tests without a GPU (tests/live/test_serve_cuda.c names it in
# $LLMQ_CUDA_BACKEND, as an operator would the real one).
CUDA_EMU_PLUGIN	:= $(O)/tests/backend-cuda-emu.so
$(CUDA_EMU_PLUGIN): $(call obj,cuda/plugin.c runtime/dtype.c runtime/backend.c \
		    cuda/backend_cuda.c) $(CUDA_EMU_OBJS)
	@mkdir -p $(dir $@)
	$(CC) -shared $(LDFLAGS_SAN) -Wl,-Bsymbolic -o $@ $^ -lstdc++ -lpthread -lm

# bench_cuda on the emulator: LLMQ_BENCH_QUICK=1 bench_cuda_emu tiny.gguf tries
# the benchmark program itself before it spends GPU time (not a measurement).
$(O)/tests/bench_cuda_emu: $(call obj,tests/unit/bench_cuda.c cuda/backend_cuda.c) \
			   $(CUDA_EMU_OBJS) $(ENGINE_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ -lstdc++ -lpthread -lm
endif

# Serving on the CUDA engine, over the emulated plugin; skips where that is
# not built (no nvcc headers or no C++ compiler).
TESTS		+= $(O)/tests/test_serve_cuda
$(O)/tests/test_serve_cuda: $(call obj,tests/live/test_serve_cuda.c tests/live/harness.c) \
			    $(LIBA) | $(O)/bin/llmq-mkmodel $(O)/bin/llmqd $(O)/bin/llmq \
			    $(CUDA_EMU_PLUGIN)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $(filter %.o %.a,$^) $(LIBS_CMOCKA)

.PHONY: check-cuda cuda-sanitize bench-cuda
check-cuda: $(O)/tests/test_cuda
	$(O)/tests/test_cuda

cuda-sanitize: $(O)/tests/test_cuda
	scripts/cuda-sanitize.sh $(O)

bench-cuda: all $(O)/bin/llmq-mkmodel $(O)/tests/bench_cuda
	scripts/bench-cuda.sh $(O)
# ---- end of the CUDA backend -----------------------------------------------------

# ---- man pages (Documentation/man/) and systemd units (tools/systemd/) -----
# The pages are rst, built with Debian's rst2man (python3-docutils) when it
# is there; test_install checks them against each tool's --help.  The units
# get @BINDIR@ at install time, as libllmq.pc does.
MANDIR		?= $(DATADIR)/man
SYSTEMDDIR	?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR	?= $(PREFIX)/lib/sysusers.d
RST2MAN		?= $(shell command -v rst2man 2>/dev/null)
MANPAGES	:= $(O)/man/llmqd.8 $(O)/man/llmqctl.8 $(O)/man/llmq-bench.1
UNITS_IN	:= tools/systemd/llmqd.service.in tools/systemd/llmq-textfile.service.in
TESTS		+= $(O)/tests/test_install

.PHONY: man install-man install-systemd
ifneq ($(RST2MAN),)
all: $(MANPAGES)
endif
man: $(MANPAGES)

$(O)/man/%: Documentation/man/%.rst
	@mkdir -p $(dir $@)
	$(RST2MAN) --halt=warning --exit-status=warning $< $@

install: install-man install-systemd

ifneq ($(RST2MAN),)
install-man: $(MANPAGES)
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8
	install -m 644 $(filter %.1,$(MANPAGES)) $(DESTDIR)$(MANDIR)/man1
	install -m 644 $(filter %.8,$(MANPAGES)) $(DESTDIR)$(MANDIR)/man8
else
install-man:
	@echo "llmq: rst2man missing (python3-docutils): no man pages installed"
endif

install-systemd:
	install -d $(DESTDIR)$(SYSTEMDDIR) $(DESTDIR)$(SYSUSERSDIR)
	for u in $(UNITS_IN); do \
		sed -e 's|@BINDIR@|$(BINDIR)|g' $$u > $(DESTDIR)$(SYSTEMDDIR)/$$(basename $$u .in); \
		chmod 644 $(DESTDIR)$(SYSTEMDDIR)/$$(basename $$u .in); \
	done
	install -m 644 tools/systemd/llmq-textfile.timer $(DESTDIR)$(SYSTEMDDIR)
	install -m 644 tools/systemd/llmq.sysusers $(DESTDIR)$(SYSUSERSDIR)/llmq.conf

$(O)/obj/tests/live/test_install.o: CFLAGS_ALL += -DLLMQ_SRCDIR='"$(CURDIR)"'
$(O)/tests/test_install: $(call obj,tests/live/test_install.c tests/live/harness.c) $(LIBA) \
			 | $(O)/bin/llmqd $(O)/bin/llmqctl $(O)/bin/llmq-bench
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $(filter %.o %.a,$^) $(LIBS_CMOCKA)
# ---- end of man pages and systemd units ------------------------------------

deps:
	@scripts/install-deps.sh

test-deps:
	@scripts/install-deps.sh --test

# Reference implementations from npm that the tests compare against.
test-oracles: tests/gguf/node_modules/.package-lock.json \
	      tests/tokenizer/node_modules/.package-lock.json

tests/tokenizer/node_modules/.package-lock.json: tests/tokenizer/package.json \
						 tests/tokenizer/package-lock.json
	@if command -v npm >/dev/null; then \
		npm ci --prefix tests/tokenizer --no-audit --no-fund --loglevel=error; \
	else \
		echo "llmq: npm missing: tokenizer reference tests will be skipped"; \
	fi

# Tokens/s on 1 MiB of text, ours beside the npm reference tokenizers.
bench-tokenizer: test-deps test-oracles $(O)/tests/bench_tokenizer
	node tests/tokenizer/bench.mjs
	$(O)/tests/bench_tokenizer

tests/gguf/node_modules/.package-lock.json: tests/gguf/package.json tests/gguf/package-lock.json
	@if command -v npm >/dev/null; then \
		npm ci --prefix tests/gguf --no-audit --no-fund --loglevel=error; \
	else \
		echo "llmq: npm missing: tests against @huggingface/gguf will be skipped"; \
	fi

# The GGUF reader under libFuzzer with ASan+UBSan, seeded with real models.
FUZZ_SECONDS	?= 60
fuzz: test-deps $(O)/bin/llmq-mkmodel
	@mkdir -p $(O)/fuzz/corpus
	clang -std=gnu11 -g -O1 -D_GNU_SOURCE -Iinclude/uapi -Itools/lib/llmq -Iruntime \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		-o $(O)/fuzz/fuzz_gguf tests/fuzz/fuzz_gguf.c $(MODEL_SRCS) -lm
	@for d in F32 Q8_0 Q4_K; do \
		$(O)/bin/llmq-mkmodel --preset tiny --dtype $$d -o $(O)/fuzz/corpus/tiny-$$d.gguf \
			2>/dev/null; \
	done
	$(O)/fuzz/fuzz_gguf -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 \
		$(O)/fuzz/corpus
# Plain build and tests, then the same under ASan+UBSan in $(O)-asan.
check: test-deps test-oracles
	@$(MAKE) --no-print-directory all tests-build
	@$(MAKE) --no-print-directory O=$(O)-asan SAN=1 OPT=-O1 all tests-build
	@scripts/run-tests.sh $(O) $(O)-asan

test: check

.PHONY: tests-build
tests-build: $(TESTS)

demo: deps all
	@scripts/demo.sh $(O)

bench-ring: deps all
	@scripts/bench-ring.sh $(O)

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig \
		$(DESTDIR)$(INCLUDEDIR)/linux $(DESTDIR)$(INCLUDEDIR)/llmq
	install -m 755 $(BINS) $(DESTDIR)$(BINDIR)
	install -m 644 $(LIBA) $(DESTDIR)$(LIBDIR)
	install -m 755 $(LIBSO) $(DESTDIR)$(LIBDIR)
	$(if $(CUDA_PLUGIN),install -D -m 755 $(CUDA_PLUGIN) $(DESTDIR)$(LIBDIR)/llmq/backend-cuda.so)
	ln -sf libllmq.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libllmq.so.$(SOVERSION)
	ln -sf libllmq.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libllmq.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    tools/lib/llmq/libllmq.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/libllmq.pc
	install -m 644 include/uapi/linux/llmq.h $(DESTDIR)$(INCLUDEDIR)/linux
	install -m 644 tools/lib/llmq/libllmq.h $(DESTDIR)$(INCLUDEDIR)/llmq
	install -d $(DESTDIR)$(MODELDIR)
	install -m 644 models/kjv-11m-q8_0.gguf models/kjv-11m-q8_0.provenance \
		models/kjv-11m.tokenizer.model $(DESTDIR)$(MODELDIR)

# Rebuild the bundled model from Debian packages (about an hour on 2 cores).
.PHONY: model
model: $(O)/bin/llmq-mkmodel
	scripts/make-model.sh $(O)

clean:
	rm -rf $(O) $(O)-asan

-include $(shell find $(O)/obj $(CUDA_O)/obj/cuda -name '*.d' 2>/dev/null)
