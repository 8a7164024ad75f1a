# Makefile for omnichan (PGXS)
#
#   make                build the shared library (warnings are errors)
#   make install        install library and SQL scripts into the server
#   bash test/run.sh    build, install, start a throwaway preloaded cluster and run every test
#
# The variables below are the only knobs; PG_CONFIG selects the server.

EXTENSION    = omnichan
EXTVERSION   = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" omnichan.control)
MODULE_big   = omnichan

OBJS = \
	src/omnichan.o \
	src/ats.o \
	src/allocate.o \
	src/capture.o \
	src/shmem.o \
	src/http.o \
	src/throttle.o \
	src/worker.o \
	src/json.o \
	src/connector.o \
	src/sync.o \
	src/pull.o \
	src/subxact.o \
	src/connectors/ebay.o \
	src/connectors/tiktok.o \
	src/connectors/lazada.o \
	src/connectors/amazon.o \
	src/connectors/shopify.o \
	src/connectors/walmart.o \
	src/connectors/etsy.o

DATA = $(wildcard sql/omnichan--*.sql)

# Regression tests (sql/NAME.sql -> expected/NAME.out), in order.  They need
# shared_preload_libraries = omnichan and the Odoo fixture database prepared by
# test/run.sh, so plain "make installcheck" against an arbitrary server is not
# the supported way to run them.
REGRESS = \
	drop_clean \
	install

# Isolation specs: test/specs/NAME.spec -> test/expected/NAME.out
ISOLATION      = $(patsubst test/specs/%.spec,%,$(sort $(wildcard test/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test

CURL_CFLAGS    := $(shell pkg-config --cflags libcurl jansson zlib)
CURL_LIBS      := $(shell pkg-config --libs libcurl jansson zlib)

PG_CPPFLAGS = -Isrc $(CURL_CFLAGS) -DOMNICHAN_VERSION=\"$(EXTVERSION)\"
# -Wextra minus unused-parameter: the server headers (PG_FUNCTION_ARGS, static
# inline helpers) do not build cleanly with it.
PG_CFLAGS   = -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter
SHLIB_LINK  = $(CURL_LIBS)

# Bitcode for JIT inlining is not worth a clang/llvm build dependency.
override with_llvm = no

# Rebuild objects when a header they include changes (src/*.h define
# structures shared between files: a stale object is a crash).
override autodepend = yes

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Print the ordered regression list (used by test/run.sh).
.PHONY: print-regress print-isolation
print-regress:
	@echo $(REGRESS)
print-isolation:
	@echo $(ISOLATION)
