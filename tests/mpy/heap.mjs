// Measures the MicroPython heap each device role uses after boot, inside the same WebAssembly
// MicroPython the firmware tests run in:
//
//   node tests/mpy/heap.mjs <repo root>
//
// firmware/lib goes to /lib and the test helpers (fakes.py) to /tests, as for the tests; then the
// steps of tests/mpy/heap_probe.py run one runPython() call each, every one starting with
// gc.collect() (this port frees garbage only between calls). Prints one JSON object: bytes per role.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

import { copyInto, findMicroPython, walk } from "./run_tests.mjs";

const HEAP_BYTES = 2 * 1024 * 1024;

async function main() {
  const repo = path.resolve(process.argv[2] || ".");
  const { loadMicroPython } = await import(pathToFileURL(findMicroPython(repo)).href);
  const mp = await loadMicroPython({
    heapsize: HEAP_BYTES,
    stdout: (line) => process.stdout.write(line + "\n"),
    stderr: (line) => process.stderr.write(line + "\n"),
  });
  copyInto(mp, "/lib", walk(path.join(repo, "firmware", "lib")));
  const helperDir = path.join(repo, "tests", "firmware");
  const helpers = fs.readdirSync(helperDir).filter((f) => f.endsWith(".py") && !/^(test_|conftest|__init__)/.test(f));
  copyInto(mp, "/tests", helpers.map((f) => [path.join(helperDir, f), f]));
  copyInto(mp, "/probe", [[path.join(repo, "tests", "mpy", "heap_probe.py"), "heap_probe.py"]]);
  try {
    mp.runPython("import gc, json, sys\nsys.path.insert(0, '/probe')\nimport heap_probe");
    const probe = mp.pyimport("heap_probe");
    for (const role of String(probe.ROLE_NAMES).split(",")) {
      for (const step of String(probe.STEP_NAMES).split(",")) {
        mp.runPython(`gc.collect()\nheap_probe.step_${step}(${JSON.stringify(role)})`);
      }
    }
    mp.runPython("print(json.dumps(heap_probe.results))");
  } catch (e) {
    process.stderr.write(`heap probe failed: ${e.message}\n`);
    process.exit(1);
  }
}

main().catch((e) => {
  process.stderr.write(`heap.mjs: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
