// Runs the firmware logic tests (tests/firmware/test_*.py) inside MicroPython, the WebAssembly port.
//
//   node tests/mpy/run_tests.mjs <repo root> [test files...]
//
// With no test files, every tests/firmware/test_*.py of the repo is run. The MicroPython file
// system gets firmware/lib/** as /lib (folder layout kept), tests/vectors/*.json as /vectors and
// the test files as /tests. For each module, each top-level `def test_*()` is called in file order
// by a small harness written in Python and run by MicroPython itself. Output, one line per test:
//
//   PASS <module>.<func>
//   FAIL <module>.<func>: <ExceptionType> <message>
//
// then `N passed, N failed` alone on a line. A failing test's traceback goes to stderr. The exit
// status is 0 only when every test passed and every module imported; 1 otherwise, 2 on misuse.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const HEAP_BYTES = 2 * 1024 * 1024;
const MPY_PACKAGE = "@micropython/micropython-webassembly-pyscript/micropython.mjs";
const TEST_DEF = /^def (test_\w+)\(/gm;

// Inside MicroPython: imports each module and calls its tests; counts what happened.
const HARNESS = `
import sys
import gc

for _p in ("/lib", "/tests"):
    if _p not in sys.path:
        sys.path.insert(0, _p)

passed = 0
failed = 0
import_errors = 0


def _text(e):
    msg = str(e).replace("\\r", " ").replace("\\n", " ").strip()
    name = type(e).__name__
    return (name + " " + msg) if msg else name


def _trace(label, e):
    sys.stderr.write("---- " + label + "\\n")
    sys.print_exception(e, sys.stderr)


def run_module(mod_name, names):
    global passed, failed, import_errors
    try:
        mod = __import__(mod_name)
    except Exception as e:
        import_errors += 1
        print("ERROR %s: import failed: %s" % (mod_name, _text(e)))
        _trace(mod_name, e)
        for n in names:
            failed += 1
            print("FAIL %s.%s: %s" % (mod_name, n, "ImportError module did not import"))
        return
    for n in names:
        label = mod_name + "." + n
        func = getattr(mod, n, None)
        if func is None:
            failed += 1
            print("FAIL %s: AttributeError no function %s in the module" % (label, n))
            continue
        try:
            func()
        except Exception as e:
            failed += 1
            print("FAIL %s: %s" % (label, _text(e)))
            _trace(label, e)
        else:
            passed += 1
            print("PASS " + label)
        gc.collect()
`;

function usage(msg) {
  process.stderr.write(`run_tests.mjs: ${msg}\nusage: node run_tests.mjs <repo root> [test files...]\n`);
  process.exit(2);
}

export function findMicroPython(repo) {
  const candidates = [
    path.join(repo, ".venv", "node", "node_modules", MPY_PACKAGE),
    path.join(repo, "node_modules", MPY_PACKAGE),
  ];
  for (const c of candidates) {
    if (fs.existsSync(c)) return c;
  }
  usage(`MicroPython WebAssembly port not found (looked in ${candidates.join(", ")}); run \`make setup\``);
}

// Every file under `dir` as [absolute path, path relative to dir], skipping __pycache__.
export function walk(dir, rel = "") {
  const out = [];
  for (const entry of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${entry.name}` : entry.name;
    if (entry.isDirectory()) {
      if (entry.name !== "__pycache__") out.push(...walk(dir, r));
    } else if (entry.isFile()) {
      out.push([path.join(dir, r), r]);
    }
  }
  return out;
}

export function copyInto(mp, dest, files) {
  for (const [src, rel] of files) {
    const target = `${dest}/${rel}`;
    mp.FS.mkdirTree(target.slice(0, target.lastIndexOf("/")) || "/");
    mp.FS.writeFile(target, fs.readFileSync(src));
  }
}

function resolveTest(repo, arg) {
  for (const p of [path.resolve(arg), path.resolve(repo, arg)]) {
    if (fs.existsSync(p) && fs.statSync(p).isFile()) return p;
  }
  usage(`no such test file: ${arg}`);
}

async function main() {
  const [repoArg, ...testArgs] = process.argv.slice(2);
  if (!repoArg) usage("missing repo root");
  const repo = path.resolve(repoArg);
  const lib = path.join(repo, "firmware", "lib");
  if (!fs.existsSync(lib)) usage(`${lib} does not exist`);

  let testFiles = testArgs.map((a) => resolveTest(repo, a));
  if (testFiles.length === 0) {
    const dir = path.join(repo, "tests", "firmware");
    testFiles = fs.readdirSync(dir).filter((f) => /^test_\w+\.py$/.test(f)).sort().map((f) => path.join(dir, f));
  }

  const modules = [];
  const seen = new Set();
  for (const file of testFiles) {
    const name = path.basename(file, ".py");
    if (!/^\w+$/.test(name)) usage(`not an importable module name: ${file}`);
    if (seen.has(name)) usage(`two test files named ${name}.py`);
    seen.add(name);
    const source = fs.readFileSync(file, "utf8");
    const tests = [...source.matchAll(TEST_DEF)].map((m) => m[1]);
    modules.push({ name, file, tests });
  }

  const { loadMicroPython } = await import(pathToFileURL(findMicroPython(repo)).href);
  const mp = await loadMicroPython({
    heapsize: HEAP_BYTES,
    stdout: (line) => process.stdout.write(line + "\n"),
    stderr: (line) => process.stderr.write(line + "\n"),
  });

  copyInto(mp, "/lib", walk(lib));
  const vectors = path.join(repo, "tests", "vectors");
  if (fs.existsSync(vectors)) {
    const json = fs.readdirSync(vectors).filter((f) => f.endsWith(".json"));
    copyInto(mp, "/vectors", json.map((f) => [path.join(vectors, f), f]));
  }
  copyInto(mp, "/tests", modules.map((m) => [m.file, `${m.name}.py`]));
  // helper modules beside the tests (fakes.py, ...): everything but tests, conftest and __init__
  const helperDir = path.join(repo, "tests", "firmware");
  const helpers = fs.readdirSync(helperDir)
    .filter((f) => f.endsWith(".py") && !/^(test_|conftest\.py$|__init__\.py$)/.test(f));
  copyInto(mp, "/tests", helpers.map((f) => [path.join(helperDir, f), f]));
  mp.FS.mkdirTree("/harness");
  mp.FS.writeFile("/harness/_rb_harness.py", HARNESS);

  let harness;
  try {
    mp.runPython("import sys\nsys.path.insert(0, '/harness')\nimport _rb_harness");
    harness = mp.pyimport("_rb_harness");
    for (const m of modules) {
      if (m.tests.length === 0) process.stderr.write(`warning: no test functions in ${m.file}\n`);
      const names = "[" + m.tests.map((t) => JSON.stringify(t)).join(", ") + "]";
      mp.runPython(`_rb_harness.run_module(${JSON.stringify(m.name)}, ${names})`);
    }
  } catch (e) {
    if (e.name !== "PythonError") throw e;
    process.stderr.write(`harness error: ${e.message}\n`);
    process.exit(1);
  }

  const passed = harness.passed;
  const failed = harness.failed;
  const importErrors = harness.import_errors;
  process.stdout.write(`${passed} passed, ${failed} failed\n`);
  process.exitCode = failed === 0 && importErrors === 0 && passed > 0 ? 0 : 1;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    process.stderr.write(`run_tests.mjs: ${e && e.stack ? e.stack : e}\n`);
    process.exit(1);
  });
}
