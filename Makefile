# ckpt: `make` builds everything into this directory, `make test` runs the
# whole suite (what .ci/run calls), `make bench` measures.
CARGO ?= cargo
CC ?= gcc
RELEASE := target/release
BINS := ckpt restart readckpt ckpt-slurm libckpt.so hello-test counting-test
# Demos are built for baseline x86-64, never for the build machine's CPU;
# the vector demo once per register width (the tests run those this CPU has).
VECTORS := demo/bin/vector-avx512 demo/bin/vector-avx2 demo/bin/vector-sse
DEMOS := $(filter-out demo/bin/hello-test demo/bin/counting-test demo/bin/vector,$(patsubst demo/%.c,demo/bin/%,$(wildcard demo/*.c))) $(VECTORS)
DEMO_CFLAGS := -O2 -g -fopenmp -pthread

# A tokio program (tests/events.rs), its own cargo project: --locked, and
# no network needed once its crates are fetched (.ci/run fetches them).
TOKIO_DEMO := target/runtimes/release/tokio-ticker

.PHONY: all rust test bench clean fixture install uninstall
all: $(BINS) $(DEMOS) $(TOKIO_DEMO)

rust:
	$(CARGO) build --release --workspace

# (An empty recipe: make looks at their times again after cargo ran.)
$(RELEASE)/ckpt $(RELEASE)/restart $(RELEASE)/readckpt $(RELEASE)/ckpt-slurm $(RELEASE)/libckpt.so: rust ;

ckpt restart readckpt ckpt-slurm libckpt.so: %: $(RELEASE)/%
	cp --remove-destination $< $@

# The seed's demo programs: -rdynamic as in the seed (ckpt itself does not need it).
hello-test counting-test: %: demo/%.c
	$(CC) -O2 -g -rdynamic -o $@ $<

demo/bin/%: demo/%.c demo/fd-at.h
	@mkdir -p demo/bin
	$(CC) $(DEMO_CFLAGS) -o $@ $< -lm

demo/bin/vector-avx512: VECTOR_FLAGS := -mavx512f -mavx512dq -mavx512bw -mavx512vl -mavx2 -mfma
demo/bin/vector-avx2: VECTOR_FLAGS := -mavx2 -mfma
demo/bin/vector-sse: VECTOR_FLAGS :=
$(VECTORS): demo/vector.c
	@mkdir -p demo/bin
	$(CC) $(DEMO_CFLAGS) $(VECTOR_FLAGS) -o $@ $< -lm

$(TOKIO_DEMO): demo/runtimes/tokio/Cargo.toml demo/runtimes/tokio/Cargo.lock demo/runtimes/tokio/src/main.rs
	$(CARGO) build --release --locked --manifest-path demo/runtimes/tokio/Cargo.toml --target-dir target/runtimes

test: all
	$(CARGO) test --release --workspace

# Regenerates tests/fixtures/cpu-dispatch.{dat,before}, the image that the
# cross-CPU test restarts; run it on a machine with AVX-512 (and again after
# any change of the image format).
fixture: all
	$(CARGO) test --release --test cpu -- --ignored --exact make_fixture --nocapture

# `make && sudo make install`: installs what `make` built (it builds
# nothing, so that cargo never runs as root). ckpt finds the capture library
# at ../lib/ckpt/libckpt.so from its own path.
PREFIX ?= /usr/local
BINDIR := $(PREFIX)/bin
LIBDIR := $(PREFIX)/lib/ckpt
MAN1DIR := $(PREFIX)/share/man/man1
BASHDIR := $(PREFIX)/share/bash-completion/completions
ZSHDIR := $(PREFIX)/share/zsh/site-functions
PROGRAMS := ckpt restart readckpt ckpt-slurm
MANPAGES := $(patsubst %,man/%.1,$(PROGRAMS))

install:
	@for f in $(PROGRAMS) libckpt.so; do \
	    [ -f $$f ] || { echo "make install: $$f is missing: run make first" >&2; exit 1; }; done
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(MAN1DIR) $(DESTDIR)$(BASHDIR) $(DESTDIR)$(ZSHDIR)
	install -m 0755 $(PROGRAMS) $(DESTDIR)$(BINDIR)/
	install -m 0755 libckpt.so $(DESTDIR)$(LIBDIR)/
	install -m 0644 $(MANPAGES) $(DESTDIR)$(MAN1DIR)/
	install -m 0644 completions/ckpt.bash $(DESTDIR)$(BASHDIR)/ckpt
	for p in $(filter-out ckpt,$(PROGRAMS)); do ln -sf ckpt $(DESTDIR)$(BASHDIR)/$$p; done
	install -m 0644 completions/_ckpt $(DESTDIR)$(ZSHDIR)/_ckpt

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(PROGRAMS)) $(DESTDIR)$(LIBDIR)/libckpt.so
	rm -f $(addprefix $(DESTDIR)$(MAN1DIR)/,$(notdir $(MANPAGES)))
	rm -f $(addprefix $(DESTDIR)$(BASHDIR)/,$(PROGRAMS)) $(DESTDIR)$(ZSHDIR)/_ckpt
	-rmdir $(DESTDIR)$(LIBDIR)

bench: all
	bash bench/run.sh

clean:
	$(CARGO) clean
	rm -f $(BINS) myckpt.dat
	rm -rf demo/bin
