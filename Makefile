# Thin wrapper: the real build is CMake (CMakePresets.json). See README.md and HACKING.md.
.PHONY: all deps build console test demo asan fuzz package clean

PRESET ?= dev

all: build

## deps: install every Debian package the project needs (no-op when all are present)
deps:
	@bash cmake/install-deps.sh

## build: configure and build the $(PRESET) preset (warnings are errors)
build: deps
	@cmake --preset $(PRESET) >/dev/null
	@cmake --build --preset $(PRESET)

## console: build the control room's web console (console/dist/index.html: npm ci + Vite)
console: deps
	@bash cmake/build-console.sh

## test: build, then run every test (unit, integration with a real mosquitto, the console in Chromium)
test: build console
	@ctest --preset $(PRESET)

## asan: build with ASan + UBSan and run every test
asan:
	@$(MAKE) --no-print-directory test PRESET=asan

## fuzz: build the libFuzzer targets (clang-14) and run each FUZZ_SECONDS (60); see tests/fuzz/run.sh
fuzz: deps
	@bash tests/fuzz/run.sh

## package: the Debian package, build/package/lanegate_<version>_amd64.deb (see cmake/packaging.cmake)
package: deps console
	@cmake --preset package >/dev/null
	@cmake --build --preset package
	@cd build/package && cpack -G DEB

## demo: a local broker (with the web console), the daemon and a control-room watcher; Ctrl-C stops it all
demo: deps console
	@cmake --preset release >/dev/null
	@cmake --build --preset release --target lanegated lanegatectl lanegate-sim
	@bash cmake/demo.sh build/release

clean:
	rm -rf build .demo console/dist console/node_modules
