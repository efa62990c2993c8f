# podnet — the two set-up commands are `make run` and `make test`; both install what they need.
SHELL := /bin/bash
NPM ?= npm
NODE_DEPS := node_modules/.package-lock.json
CNI_PLUGIN := $(firstword $(wildcard /opt/cni/bin/bridge /usr/lib/cni/bridge))

.PHONY: all deps sysdeps build gen test run bench clean typecheck lint install

all: build

# System tools the daemon and the tests run: the CNI reference plugins, iproute2, iptables (portmap),
# util-linux (unshare/nsenter/umount for bind-mounted namespaces), a C compiler for podnet-spawner and
# podnet-cni, containerd + runc for the tests that drive a private containerd through the CNI door, and
# ping for the hot-plug tests' traffic inside pod namespaces.
sysdeps:
	@if [ -z "$(CNI_PLUGIN)" ] || ! command -v ip >/dev/null || ! command -v iptables >/dev/null || ! command -v unshare >/dev/null || ! command -v $(CC) >/dev/null || ! command -v containerd >/dev/null || ! command -v runc >/dev/null || ! command -v ping >/dev/null; then \
	  echo "installing system packages: containernetworking-plugins iproute2 iptables util-linux gcc libc6-dev containerd runc iputils-ping"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq containernetworking-plugins iproute2 iptables util-linux gcc libc6-dev containerd runc iputils-ping >/dev/null; \
	fi

$(NODE_DEPS): package.json package-lock.json
	$(NPM) ci --no-audit --no-fund
	@touch $@

deps: sysdeps $(NODE_DEPS)

# podnet-spawner: the small C helper that forks plugins and makes namespaces for podnetd.
SPAWNER := dist/libexec/podnet-spawner
$(SPAWNER): src/spawner/podnet-spawner.c
	@mkdir -p $(@D)
	$(CC) -O2 -Wall -Wextra -Werror -o $@ $<

# podnet-cni: the CNI plugin containerd / CRI-O exec; it forwards each call to podnetd's CNI door.
SHIM := dist/libexec/podnet-cni
$(SHIM): src/cnidoor/podnet-cni.c
	@mkdir -p $(@D)
	$(CC) -O2 -Wall -Wextra -Werror -o $@ $<

build: $(NODE_DEPS) $(SPAWNER) $(SHIM)
	./node_modules/.bin/tsc -p tsconfig.json

typecheck: $(NODE_DEPS)
	./node_modules/.bin/tsc -p tsconfig.test.json

# typescript-eslint, type-aware (eslint.config.js); part of `make test`.
lint: $(NODE_DEPS)
	./node_modules/.bin/eslint src test

# Regenerates src/gen from proto/ (checked in; never edited by hand).
gen: $(NODE_DEPS)
	@command -v protoc >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler >/dev/null)
	rm -rf src/gen && mkdir -p src/gen
	protoc --plugin=protoc-gen-ts_proto=./node_modules/.bin/protoc-gen-ts_proto \
	  --ts_proto_out=src/gen \
	  --ts_proto_opt=outputServices=grpc-js,env=node,esModuleInterop=true,importSuffix=.js,useOptionals=none,forceLong=bigint,oneof=unions-value \
	  -I proto proto/runtime/v1/api.proto proto/podnet/v1/podnetworks.proto

test: deps build typecheck lint
	./node_modules/.bin/vitest run

run: deps build
	./bin/podnetd --config examples/podnetd.toml

bench: deps build
	node bench/run.mjs
	node bench/readme-table.mjs

# Installs podnetd and podnet under PREFIX (default /usr/local) with a systemd unit and an example
# /etc/podnet/config.toml (an existing config is kept).
PREFIX ?= /usr/local
DESTDIR ?=
# Where the runtime looks for CNI plugins; only install uses it (podnet-cni goes there).
CNI_BIN_DIR ?= /opt/cni/bin
install: build
	install -d $(DESTDIR)$(PREFIX)/lib/podnet $(DESTDIR)$(PREFIX)/bin $(DESTDIR)/etc/podnet/attachments.d $(DESTDIR)/etc/systemd/system $(DESTDIR)$(PREFIX)/share/doc/podnet
	cp -r dist proto package.json package-lock.json bin $(DESTDIR)$(PREFIX)/lib/podnet/
	cd $(DESTDIR)$(PREFIX)/lib/podnet && $(NPM) ci --omit=dev --no-audit --no-fund >/dev/null
	ln -sf $(PREFIX)/lib/podnet/bin/podnetd $(DESTDIR)$(PREFIX)/bin/podnetd
	ln -sf $(PREFIX)/lib/podnet/bin/podnet $(DESTDIR)$(PREFIX)/bin/podnet
	sed 's#@PREFIX@#$(PREFIX)#g' packaging/podnetd.service > $(DESTDIR)/etc/systemd/system/podnetd.service
	[ -f $(DESTDIR)/etc/podnet/config.toml ] || install -m 0644 packaging/config.toml $(DESTDIR)/etc/podnet/config.toml
	install -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/podnet/README.md
	install -d $(DESTDIR)$(CNI_BIN_DIR)
	install -m 0755 $(SHIM) $(DESTDIR)$(CNI_BIN_DIR)/podnet-cni

clean:
	rm -rf dist
