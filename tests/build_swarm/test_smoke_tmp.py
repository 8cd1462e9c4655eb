from pathlib import Path
from swarm_tasks.build.job import BuildJob
from swarm_tasks.build.workflow import submit_build
from swarm_tasks.build.codemod import sequential_reference, split_by_file
from tests.build_swarm.helpers import COUNTING, make_remote, drive, checkout, tip, git, refs


def test_codemod_in_process(local, tmp_path: Path):
    files = {f"src/m{i:02d}.py": f"applied: 0\nbody {i}\n" for i in range(12)}
    bare = make_remote(tmp_path / "r", files)
    ref_dir = checkout(bare, tmp_path / "ref")
    expected = sequential_reference(ref_dir, COUNTING, split_by_file(ref_dir, ["src/*.py"]))
    job = BuildJob(repo=str(bare), goal="count", codemod=COUNTING, files=("src/*.py",), builders=3, max_cycles=1)
    run = submit_build(local.services, job)
    record = drive(local, run.id)
    print(record.status, record.reason)
    print(record.result)
    assert git(bare, "rev-parse", "main^{tree}") == expected
    print(refs(bare))


def test_model_in_process(local, tmp_path: Path):
    from tests.build_swarm.helpers import NOTES_CHECK, SCRIPTED, show
    todo = "\n".join([f"notes/shared.txt | entry {i:02d}" for i in range(6)] + ["k1: notes/b.txt | beta", "notes/b.txt | gamma | after k1"] + [f"area/x{i}.txt | x {i}" for i in range(4)])
    bare = make_remote(tmp_path / "r", {"TODO.md": todo + "\n", "notes/shared.txt": "", "notes/b.txt": "alpha\n"})
    models = {r: f"{SCRIPTED}:{r}" for r in ("planner", "worker", "judge", "resolver")}
    job = BuildJob(repo=str(bare), goal="add the TODO lines", check=NOTES_CHECK, models=models, builders=3, max_cycles=2)
    run = submit_build(local.services, job)
    record = drive(local, run.id)
    print(record.status, record.reason)
    import json; print(json.dumps(record.result, indent=1)[:3000])
    print(show(bare, "notes/shared.txt"))
    print(show(bare, "notes/b.txt"))
    print(refs(bare))
