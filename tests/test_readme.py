"""The README stays true: CI runs exactly its two set-up commands."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands():
    text = (ROOT / "README.md").read_text()
    setup = text.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    blocks = setup.split("```bash\n")[1:]
    return [block.split("```", 1)[0].strip() for block in blocks]


def test_readme_has_exactly_two_setup_commands_and_ci_runs_them():
    commands = readme_commands()
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    for command in commands:
        assert command in ci
