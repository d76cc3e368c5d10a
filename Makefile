# jobq build: jobqd, jobq, test plugins, unit tests; `make run`, `make test`,
# `make bench`, `make install`. Objects go to $(BUILD) (build/ by default;
# build/asan for the sanitizer build, selected with SAN=1).

PREFIX     ?= /usr/local
DESTDIR    ?=
SYSCONFDIR ?= /etc
LIBDIR     ?= $(PREFIX)/lib
PLUGINDIR  ?= $(LIBDIR)/jobq/plugins
UNITDIR    ?= /lib/systemd/system
VERSION    := 0.2.0

ifeq ($(SAN),1)
BUILD      ?= build/asan
SANFLAGS   := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT        := -O1
else
BUILD      ?= build
SANFLAGS   :=
OPT        := -O2
endif

# libcurl is loaded at run time by the worker that first needs it
# (src/daemon/handlers/libcurl.c): its headers only, no link.
PKGS       := hiredis jansson inih libsystemd

# TLS (rediss://) needs a hiredis with TLS: hiredis >= 1.0, or hiredict's
# hiredis shims (Debian 12: bookworm-backports' libhiredict-shims-dev, which
# `make deps` installs). Against hiredis 0.14 jobq builds without TLS and
# says so when a rediss:// URL is given.
HAVE_TLS   := $(shell pkg-config --exists hiredis_ssl && pkg-config --atleast-version=1.0 hiredis && echo yes)
ifeq ($(HAVE_TLS),yes)
TLS_CFLAGS := -DJOBQ_HAVE_TLS
TLS_LIBS   := $(shell pkg-config --libs hiredis_ssl) -lssl -lcrypto
endif
CC         ?= cc
CFLAGS     ?= $(OPT) -g
CFLAGS     += -std=c11 -Wall -Wextra -Werror -Wformat=2 -Wstrict-prototypes \
              -Wno-format-nonliteral -D_GNU_SOURCE -Iinclude -Isrc \
              -DJOBQ_VERSION='"$(VERSION)"' -DJOBQ_PLUGIN_DIR='"$(PLUGINDIR)"' \
              $(SANFLAGS) $(TLS_CFLAGS) $(shell pkg-config --cflags $(PKGS) libcurl 2>/dev/null)
LDFLAGS    += $(SANFLAGS)
LDLIBS     := $(shell pkg-config --libs $(PKGS) 2>/dev/null) $(TLS_LIBS) -lev -lresolv -ldl -lm

# The shared core (job model, config, URL, JSON) and the Redis protocol,
# built once into an archive: each binary links only the members it uses.
CORE_OBJS  := core/err core/log core/config core/config_sections core/config_secrets core/redis_url core/json_writer core/job core/backoff \
              core/random core/cronspec core/weights protocol/keys protocol/node protocol/tls protocol/cluster \
              protocol/sentinel protocol/redis protocol/commands protocol/scripts protocol/functions \
              protocol/documents protocol/outcome protocol/histo protocol/queue protocol/daemons protocol/jobs \
              protocol/depends protocol/batch protocol/flow protocol/crontab
HANDLER_OBJS := daemon/handlers/libcurl daemon/handlers/wordcount daemon/handlers/words daemon/handlers/exec \
              daemon/handlers/addr_policy daemon/handlers/url_redact daemon/handlers/testing
JOBQD_OBJS := daemon/main daemon/supervisor daemon/workers daemon/upkeep daemon/cron daemon/worker \
              daemon/job_run daemon/depends daemon/notify daemon/plugin daemon/registry daemon/slots $(HANDLER_OBJS)
JOBQ_OBJS  := cli/main cli/util cli/jobs cli/status cli/metrics cli/dead cli/migrate cli/batch cli/flow cli/cron \
              cli/web cli/web_api cli/web_events cli/web_page
UNIT_TESTS := test_config test_redis_url test_job test_json_writer test_words test_backoff test_plugin \
              test_keys test_outcome test_histo test_addr_policy test_url_redact test_sentinel test_cronspec \
              test_weights

# What each unit test links besides its own object and the core archive.
test_words_OBJS     := daemon/handlers/words
test_addr_policy_OBJS := daemon/handlers/addr_policy
test_url_redact_OBJS := daemon/handlers/url_redact
test_plugin_OBJS    := daemon/registry daemon/plugin $(HANDLER_OBJS)

obj = $(addprefix $(BUILD)/obj/,$(addsuffix .o,$(1)))

# jobq web: libmicrohttpd (and threads) for the jobq binary only; the
# dashboard's files are embedded as arrays generated into $(BUILD)/gen.
WEB_OBJS   := cli/web cli/web_api cli/web_events cli/web_page
WEB_CFLAGS := $(shell pkg-config --cflags libmicrohttpd 2>/dev/null) -pthread -I$(BUILD)/gen
WEB_LIBS   := $(shell pkg-config --libs libmicrohttpd 2>/dev/null) -pthread
WEB_ASSETS := index.html app.css app.js favicon.svg
CORE_LIB := $(BUILD)/libjobq-core.a

.PHONY: all deps run test unit integration unit-file check-asan bench profile install uninstall clean plugins \
        fuzz fuzz-smoke fuzzers failmalloc screenshot

all: $(BUILD)/jobqd $(BUILD)/jobq plugins

HEADERS := $(wildcard src/*/*.h src/daemon/handlers/*.h include/jobq/*.h)

# The plugin directory is compiled into jobqd (the [plugins] dir default):
# building, then installing with another PREFIX or PLUGINDIR rebuilds what
# uses it, so the installed jobqd and jobq.pc always agree.
PLUGINDIR_STAMP := $(BUILD)/plugindir.stamp
$(shell mkdir -p $(BUILD) && (echo '$(PLUGINDIR)' | cmp -s - $(PLUGINDIR_STAMP) || echo '$(PLUGINDIR)' > $(PLUGINDIR_STAMP)))
$(BUILD)/obj/core/config.o: $(PLUGINDIR_STAMP)

# hiredis 0.14 and 1.x (or hiredict) differ in their structures: objects
# built against one are rebuilt when the other is installed.
HIREDIS_STAMP := $(BUILD)/hiredis.stamp
HIREDIS_ID := $(shell pkg-config --modversion hiredis 2>/dev/null) tls=$(HAVE_TLS)
$(shell mkdir -p $(BUILD) && (echo '$(HIREDIS_ID)' | cmp -s - $(HIREDIS_STAMP) || echo '$(HIREDIS_ID)' > $(HIREDIS_STAMP)))

$(BUILD)/obj/%.o: src/%.c $(HEADERS) $(HIREDIS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(CORE_LIB): $(call obj,$(CORE_OBJS))
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/jobqd: $(call obj,$(JOBQD_OBJS)) $(CORE_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/jobq: $(call obj,$(JOBQ_OBJS)) $(CORE_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(WEB_LIBS)

$(call obj,$(WEB_OBJS)): CFLAGS += $(WEB_CFLAGS)
$(call obj,cli/web_page): $(BUILD)/gen/web_assets.h
$(BUILD)/gen/web_assets.h: src/cli/web/embed.sh $(addprefix src/cli/web/,$(WEB_ASSETS))
	@mkdir -p $(dir $@)
	sh src/cli/web/embed.sh $@ $(foreach f,$(WEB_ASSETS),asset_$(subst .,_,$(f))=src/cli/web/$(f))

# Unit tests: one cmocka binary per module, linked with the core objects.
$(BUILD)/tests/%.o: tests/unit/%.c $(HEADERS) $(HIREDIS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(shell pkg-config --cflags cmocka) -Wno-strict-prototypes -c -o $@ $<

.SECONDEXPANSION:
$(BUILD)/tests/test_%: $(BUILD)/tests/test_%.o $$(call obj,$$(test_$$*_OBJS)) $(CORE_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(shell pkg-config --libs cmocka)

# Test plugins (tests/plugins/*.c) and the example plugin (src/plugins/*.c).
PLUGIN_SRCS := $(wildcard tests/plugins/*.c src/plugins/*.c)
PLUGIN_SOS  := $(addprefix $(BUILD)/plugins/,$(notdir $(PLUGIN_SRCS:.c=.so)))
plugins: $(PLUGIN_SOS)
$(BUILD)/plugins/%.so: tests/plugins/%.c include/jobq/plugin.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -Wall -Wextra -Werror -Iinclude -fPIC -shared -fvisibility=hidden $(SANFLAGS) -o $@ $<
$(BUILD)/plugins/%.so: src/plugins/%.c include/jobq/plugin.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -Wall -Wextra -Werror -Iinclude -fPIC -shared -fvisibility=hidden $(SANFLAGS) -o $@ $< -lcrypto

# libFuzzer harnesses (tests/fuzz/*.c) over the pure parsers and document
# builders, built with clang into their own directory: the objects carry
# the fuzzer's coverage hooks and ASan/UBSan, so they never mix with gcc's.
# `make fuzz FUZZ_SECONDS=N` runs each for N seconds on a scratch copy of
# tests/fuzz/corpus/<name>/; reproducers land in build/fuzz/artifacts/.
FUZZ_SECONDS ?= 30
FUZZ_BUILD   := build/fuzz
FUZZ_CC      ?= clang
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS  := -O1 -g -std=c11 -Wall -Wextra -Werror -Wformat=2 -Wstrict-prototypes \
                -Wno-format-nonliteral -D_GNU_SOURCE -Iinclude -Isrc -DJOBQ_VERSION='"$(VERSION)"' \
                -DJOBQ_PLUGIN_DIR='"$(PLUGINDIR)"' $(FUZZ_SAN) \
                $(shell pkg-config --cflags jansson inih 2>/dev/null)
FUZZ_LDLIBS  := $(shell pkg-config --libs jansson inih 2>/dev/null) -lresolv -lm
FUZZ_OBJS    := core/err core/log core/config core/config_sections core/config_secrets core/cronspec core/redis_url core/json_writer \
                core/job core/random \
                protocol/documents
FUZZERS      := fuzz_job fuzz_config fuzz_url

fuzzers: $(addprefix $(FUZZ_BUILD)/,$(FUZZERS))

$(FUZZ_BUILD)/obj/%.o: src/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(addprefix $(FUZZ_BUILD)/obj/,$(addsuffix .o,$(FUZZ_OBJS))) $(HEADERS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< \
	    $(addprefix $(FUZZ_BUILD)/obj/,$(addsuffix .o,$(FUZZ_OBJS))) $(FUZZ_LDLIBS)

fuzz: fuzzers
	@tests/tools/run-fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZERS)

fuzz-smoke: fuzzers
	@tests/tools/run-fuzz.sh $(FUZZ_BUILD) 5 $(FUZZERS)

# LD_PRELOAD shim failing chosen allocations (tests/tools/failmalloc.c; see
# tests/integration/test_oom_injection.py). Always gcc and never sanitized:
# it is preloaded into the plain build/jobqd.
failmalloc: build/failmalloc.so
build/failmalloc.so: tests/tools/failmalloc.c
	@mkdir -p $(dir $@)
	gcc -std=c11 -Wall -Wextra -Werror -O2 -g -fPIC -shared -D_GNU_SOURCE -o $@ $< -ldl -lpthread

deps:
	@tests/tools/ensure-deps.sh

run: deps
	@$(MAKE) --no-print-directory all
	@tests/tools/run.sh

unit: plugins $(addprefix $(BUILD)/tests/,$(UNIT_TESTS))
	@tests/tools/run-unit.sh $(BUILD) $(UNIT_TESTS)

integration: all build/failmalloc.so
	@JOBQ_BUILD=$(BUILD) tests/tools/run-integration.sh

check-asan:
	@$(MAKE) --no-print-directory SAN=1 unit integration

test: deps
	@$(MAKE) --no-print-directory all unit
	@$(MAKE) --no-print-directory fuzz-smoke
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory check-asan

# BENCH_PEERS=rq,celery,sidekiq,bullmq (the default, "all"), a subset, or none.
bench: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) tests/bench/ensure-peers.sh
	@BUILD=$(BUILD) tests/bench/run.sh

# A private redis-server, jobqd and jobq web with some jobs, and headless
# Chromium's screenshot of the dashboard: $(BUILD)/dashboard.png.
screenshot: all
	@JOBQ_BUILD=$(BUILD) tests/tools/screenshot.sh

# Where a no-op job's CPU goes (perf); see tests/bench/README.md.
profile: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) tests/bench/profile.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include/jobq \
	    $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(SYSCONFDIR)/jobq \
	    $(DESTDIR)$(UNITDIR)
	install -m 755 $(BUILD)/jobqd $(BUILD)/jobq $(DESTDIR)$(PREFIX)/bin/
	install -m 644 include/jobq/plugin.h $(DESTDIR)$(PREFIX)/include/jobq/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    -e 's|@PLUGINDIR@|$(PLUGINDIR)|g' src/jobq.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/jobq.pc
	[ -e $(DESTDIR)$(SYSCONFDIR)/jobq/jobq.conf ] || \
	    install -m 644 config/jobq.conf $(DESTDIR)$(SYSCONFDIR)/jobq/jobq.conf
	$(UNIT_SED) systemd/jobqd.service > $(DESTDIR)$(UNITDIR)/jobqd.service
	$(UNIT_SED) systemd/jobqd@.service > $(DESTDIR)$(UNITDIR)/jobqd@.service

# The units as installed: Type=notify-reload where systemd has it (>= 253:
# `systemctl reload` then waits until the reload is done), else Type=notify
# with ExecReload sending SIGHUP. `systemd-analyze security --offline=true
# build/jobqd.service` rates them.
SYSTEMD_VERSION := $(shell systemctl --version 2>/dev/null | awk 'NR == 1 {print $$2 + 0}')
UNIT_RELOAD := $(if $(shell [ "0$(SYSTEMD_VERSION)" -ge 253 ] && echo y),Type=notify-reload,Type=notify\nExecReload=/bin/kill -HUP $$MAINPID)
UNIT_SED = sed -e '/^\#/!s|@BINDIR@|$(PREFIX)/bin|g' -e '/^\#/!s|@RELOAD@|$(UNIT_RELOAD)|'
unit-file: $(BUILD)/jobqd.service $(BUILD)/jobqd@.service
$(BUILD)/jobqd.service $(BUILD)/jobqd@.service: $(BUILD)/%: systemd/%
	@mkdir -p $(dir $@)
	$(UNIT_SED) $< > $@

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/jobqd $(DESTDIR)$(PREFIX)/bin/jobq \
	    $(DESTDIR)$(PREFIX)/include/jobq/plugin.h $(DESTDIR)$(LIBDIR)/pkgconfig/jobq.pc \
	    $(DESTDIR)$(UNITDIR)/jobqd.service $(DESTDIR)$(UNITDIR)/jobqd@.service
	-rmdir $(DESTDIR)$(PREFIX)/include/jobq $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(LIBDIR)/jobq 2>/dev/null
	@echo "kept $(DESTDIR)$(SYSCONFDIR)/jobq/jobq.conf (remove it by hand if unwanted)"

clean:
	rm -rf build
.PRECIOUS: $(BUILD)/tests/%.o $(FUZZ_BUILD)/obj/%.o
