# ckpt: `make` builds everything into this directory, `make test` runs the
# whole suite (what .ci/run calls), `make bench` measures.
CARGO ?= cargo
CC ?= gcc
RELEASE := target/release
BINS := ckpt restart readckpt libckpt.so hello-test counting-test
DEMOS := $(filter-out demo/bin/hello-test demo/bin/counting-test,$(patsubst demo/%.c,demo/bin/%,$(wildcard demo/*.c)))

.PHONY: all rust test bench clean
all: $(BINS) $(DEMOS)

rust:
	$(CARGO) build --release --workspace

$(RELEASE)/ckpt $(RELEASE)/restart $(RELEASE)/readckpt $(RELEASE)/libckpt.so: rust

ckpt restart readckpt libckpt.so: %: $(RELEASE)/%
	cp --remove-destination $< $@

# The seed's demo programs: -rdynamic as in the seed (ckpt itself does not need it).
hello-test counting-test: %: demo/%.c
	$(CC) -O2 -g -rdynamic -o $@ $<

demo/bin/%: demo/%.c
	@mkdir -p demo/bin
	$(CC) -O2 -g -march=native -fopenmp -pthread -o $@ $< -lm

test: all
	$(CARGO) test --release --workspace

bench: all
	bash bench/run.sh

clean:
	$(CARGO) clean
	rm -f $(BINS) myckpt.dat
	rm -rf demo/bin
