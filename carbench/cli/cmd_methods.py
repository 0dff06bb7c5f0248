"""``bench methods [show NAME]`` and ``bench degradations [show KIND]``: the registries and their
declared options, read from the declarations themselves (the same rows as ``docs/options.md``)."""

from __future__ import annotations

import typer

methods_app = typer.Typer(
    help="Restoration methods: list (group, paper, licence, weights) or show one's options.",
    invoke_without_command=True,
)
degradations_app = typer.Typer(
    help="Degradation kinds: list with their parameters, or show one's.",
    invoke_without_command=True,
)


def _option_lines(rows: list[dict[str, str]]) -> list[str]:
    if not rows:
        return ["  options: none"]
    width = max(len(r["option"]) for r in rows)
    out = ["  options:"]
    for r in rows:
        in_id = "" if r["in id"] == "yes" else "; not in the id"
        out.append(f"    {r['option']:<{width}}  {r['type']} [default: {r['default']}{in_id}]")
        out.append(f"    {'':<{width}}  {r['help']}")
    return out


def method_summary(name: str) -> dict[str, str]:
    """One row of ``bench methods``: group, label, paper, licence, weights present/missing."""
    from carbench import methods
    from carbench.methods.base import locate

    cls = methods.get_class(name)
    files = list(dict.fromkeys(wf for v in cls.weights.values() for wf in v))
    missing = [wf for wf in files if locate(name, wf) is None]
    if not files:
        weights = "none needed"
    elif not missing:
        weights = "present"
    else:
        weights = f"missing {len(missing)} of {len(files)} file(s)"
    licences = sorted({wf.licence.split(" (")[0] for wf in files if wf.licence})
    return {
        "method": name,
        "label": cls.label or cls.name,
        "group": cls.group,
        "paper": cls.paper or "-",
        "licence": ", ".join(licences) or "-",
        "weights": weights,
    }


@methods_app.callback()
def methods_cmd(ctx: typer.Context) -> None:
    """List methods: name, table label, group, paper, licence, weights present/missing."""
    if ctx.invoked_subcommand is not None:
        return
    from carbench import methods

    for name in sorted(methods.registry()):
        r = method_summary(name)
        typer.echo(
            f"{r['method']:<10} {r['label']:<10} {r['group']:<12} {r['weights']:<26} "
            f"{r['licence']:<22} {r['paper']}"
        )


@methods_app.command("show")
def methods_show(name: str = typer.Argument(..., help="A method name, e.g. fbcnn")) -> None:
    """A method's description, capabilities, declared options and weight files."""
    from carbench import methods
    from carbench.core.options import table_rows
    from carbench.methods.base import how_to_get, locate

    cls = methods.get_class(name)
    r = method_summary(name)
    typer.echo(f"{name}: {cls.description}")
    typer.echo(f"  label {r['label']}, group {r['group']}, paper {r['paper']}")
    caps = cls.capabilities
    typer.echo(
        f"  inputs: gray {caps.gray}, colour {caps.colour}"
        + (f", reads the {caps.needs_bitstream} bitstream" if caps.needs_bitstream else "")
        + (", picks its model by the JPEG QF" if caps.needs_qf else "")
    )
    for line in _option_lines(table_rows(cls.declared_options)):
        typer.echo(line)
    if not cls.weights:
        typer.echo("  weights: none needed")
    for variant, files in cls.weights.items():
        typer.echo(f"  weights ({variant}):")
        for wf in files:
            where = locate(name, wf)
            typer.echo(f"    present {where}" if where else f"    missing {how_to_get(name, wf)}")


@degradations_app.callback()
def degradations_cmd(ctx: typer.Context) -> None:
    """List degradation kinds with their parameters and an example spec."""
    if ctx.invoked_subcommand is not None:
        return
    from carbench.degradations.base import KINDS

    for kind, cls in KINDS.items():
        params = ", ".join(o.name for o in cls.spec_options) or "-"
        typer.echo(f"{kind:<6} {params:<40} e.g. {cls.spec_example or '-'}")


@degradations_app.command("show")
def degradations_show(kind: str = typer.Argument(..., help="A kind, e.g. jpeg")) -> None:
    """A kind's parameters (several values each: their product is generated)."""
    from carbench.core.options import table_rows, unknown_name
    from carbench.degradations.base import KINDS

    if kind not in KINDS:
        raise unknown_name("degradation kind", kind, KINDS)
    cls = KINDS[kind]
    typer.echo(f"{kind}: {(cls.__doc__ or '').strip().splitlines()[0]}")
    typer.echo(f"  example: {cls.spec_example or '-'}")
    for line in _option_lines(table_rows(cls.spec_options)):
        typer.echo(line)
