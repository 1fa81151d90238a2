/**
 * Adds one plain closing line, `N passed, N failed, N skipped`, after vitest's own summary, so that CI
 * (which reads such a line in any language) can tell how many tests ran. Skipped tests are never counted as passed.
 * A test file whose process died of a signal is a failure like any other (nothing is run again), and is named
 * on a line of its own.
 */
import type { Reporter, TestModule, TestRunEndReason } from 'vitest/node';

const CRASH = /Worker exited unexpectedly with signal (SIG[A-Z]+) .*while running test file (\S+)/;

function errorText(error: unknown): string {
  if (typeof error !== 'object' || error === null) return String(error);
  const e = error as { message?: unknown; cause?: unknown };
  return `${String(e.message ?? '')} ${e.cause ? errorText(e.cause) : ''}`;
}

export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown>, reason: TestRunEndReason): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    const testsOf = new Map<string, { tests: number; passed: number }>();
    for (const module of testModules) {
      const tests = [...module.children.allTests()];
      testsOf.set(module.moduleId, { tests: tests.length, passed: tests.filter((t) => t.result().state === 'passed').length });
      if (module.state() === 'failed' && tests.length === 0) failed += 1; // file did not load
      for (const test of tests) {
        const state = test.result().state;
        if (state === 'passed') passed += 1;
        else if (state === 'failed') failed += 1;
        else skipped += 1;
      }
    }
    const crashed: Array<{ file: string; signal: string; tests: number; passed: number }> = [];
    for (const error of unhandledErrors) {
      const crash = CRASH.exec(errorText(error));
      if (crash) crashed.push({ file: crash[2]!, signal: crash[1]!, ...(testsOf.get(crash[2]!) ?? { tests: 0, passed: 0 }) });
      else failed += 1;
    }
    // a run that failed before any test (e.g. no brokers in global setup) is not a clean zero
    if (reason !== 'passed' && failed === 0 && crashed.length === 0) failed = 1;
    for (const c of crashed) {
      process.stdout.write(`\nthe test process of ${c.file} died of ${c.signal} after ${c.passed} of its ${c.tests} tests passed: a crash, counted as a failure\n`);
    }
    process.stdout.write(`\n${passed} passed, ${failed + crashed.length} failed, ${skipped} skipped\n`);
  }
}
