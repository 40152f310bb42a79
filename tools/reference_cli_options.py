"""List every option of the reference's `image_net.py validate-quantized` with its type, default,
choices and a sample value, for crates/fp8q-cli/tests/cli_reference_options.rs.

The reference (Qualcomm-AI-research/FP8-quantization) builds the command from click decorators:
`base_options`, `fp8_options`, `quantization_options`, `qat_options` (which adds
`multi_optimizer_options("quant")` and the oscillation options) in `utils/click_options.py`, and
`--load-type` in `image_net.py`. This script reads those sources with `ast` (nothing of the reference
is imported or run), follows the decorator chain of `validate_quantized`, and writes one line per
spelling (a `--x/--no-x` pair gives two lines):

    spelling <TAB> kind <TAB> default <TAB> choices (| separated, or -) <TAB> sample value (or -)

kind is flag, int, float, text, path or choice; default is the reference's default (`None` when it
has none; for a flag pair, the pair's default on the `--x` line and its negation on `--no-x`).

    python tools/reference_cli_options.py REFERENCE_CHECKOUT_OR_GIT_DIR OUT.txt

REFERENCE may be a checkout or a bare git directory (read with `git show HEAD:path`).
"""
import ast
import os
import subprocess
import sys


def read_source(ref, path):
    if os.path.isfile(os.path.join(ref, path)):
        with open(os.path.join(ref, path)) as f:
            return f.read()
    return subprocess.check_output(["git", "--git-dir", ref, "show", f"HEAD:{path}"], text=True)


def commit_of(ref):
    try:
        args = ["git", "--git-dir", ref] if not os.path.isdir(os.path.join(ref, ".git")) else ["git", "-C", ref]
        return subprocess.check_output(args + ["rev-parse", "HEAD"], text=True).strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown"


def enum_names(ref, path, cls):
    """Member names of an enum class (`name = ...` assignments in its body)."""
    tree = ast.parse(read_source(ref, path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == cls:
            return [t.id for st in node.body if isinstance(st, ast.Assign) for t in st.targets if isinstance(t, ast.Name)]
    raise SystemExit(f"enum {cls} not found in {path}")


def is_click_option(call):
    f = call.func
    return isinstance(f, ast.Attribute) and f.attr == "option" and isinstance(f.value, ast.Name) and f.value.id == "click"


def spelling(node, prefix):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.JoinedStr):  # f"--{prefix_option}learning-rate"
        out = ""
        for part in node.values:
            out += part.value if isinstance(part, ast.Constant) else prefix
        return out
    raise SystemExit(f"unexpected option spelling {ast.dump(node)}")


class Options:
    def __init__(self, ref):
        self.ref = ref
        self.enums = {
            "QuantArchitectures": enum_names(ref, "models/__init__.py", "QuantArchitectures"),
            "QMethods": enum_names(ref, "quantization/quantization_manager.py", "QMethods"),
            "RangeEstimators": enum_names(ref, "quantization/range_estimators.py", "RangeEstimators"),
            "OptMethod": enum_names(ref, "quantization/range_estimators.py", "OptMethod"),
            "ImageInterpolation": enum_names(ref, "utils/imagenet_dataloaders.py", "ImageInterpolation"),
        }
        self.click = ast.parse(read_source(ref, "utils/click_options.py"))
        self.defs = {n.name: n for n in ast.walk(self.click) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        self.rows = []

    def literal(self, node):
        if isinstance(node, ast.Constant):
            return node.value
        # RangeEstimators.current_minmax.name, ImageInterpolation.bilinear.name
        if isinstance(node, ast.Attribute) and node.attr == "name" and isinstance(node.value, ast.Attribute):
            return node.value.attr
        raise SystemExit(f"unexpected default {ast.dump(node)}")

    def option(self, call, prefix=""):
        names = spelling(call.args[0], prefix)
        kw = {k.arg: k.value for k in call.keywords}
        default = self.literal(kw["default"]) if "default" in kw else None
        if "/" in names:  # a --x/--no-x flag pair
            on, off = names.split("/")
            self.rows.append((on, "flag", str(bool(default)), "-", "-"))
            self.rows.append((off, "flag", str(not default), "-", "-"))
            return
        kind, choices = "text", []
        t = kw.get("type")
        if isinstance(t, ast.Name):
            kind = {"int": "int", "float": "float", "str": "text"}[t.id]
        elif isinstance(t, ast.Call):
            f = t.func
            fname = f.attr if isinstance(f, ast.Attribute) else f.id
            if fname == "Path":
                kind = "path"
            elif fname == "Choice":
                kind, choices = "choice", [self.literal(c) for c in t.args[0].elts]
            elif fname == "ClickEnumOption":
                kind, choices = "choice", self.enums[t.args[0].id]
            else:
                raise SystemExit(f"unexpected type {fname}")
        elif kw.get("is_flag"):
            kind = "flag"
        if kind == "choice":
            sample = str(default if default is not None else choices[0])
        elif kind == "path":
            sample = "some/path"
        elif kind == "flag":
            sample = "-"
        elif default is not None:
            sample = str(default)
        else:
            sample = {"int": "8", "float": "0.5", "text": "x"}[kind]
        self.rows.append((names, kind, str(default), "|".join(choices) or "-", sample))

    def decorators(self, decos, prefix=""):
        """Options of a decorator list, outermost first (the order of --help)."""
        for d in decos:
            if isinstance(d, ast.Call) and is_click_option(d):
                self.option(d, prefix)
            elif isinstance(d, ast.Call) and isinstance(d.func, ast.Name) and d.func.id == "multi_optimizer_options":
                p = d.args[0].value if d.args else ""
                call = next(n for n in self.defs["multi_optimizer_options"].body if isinstance(n, ast.FunctionDef) and n.name == "__call__")
                wrapper = next(n for n in call.body if isinstance(n, ast.FunctionDef))
                self.decorators(wrapper.decorator_list, p + "-" if p else "")
            elif isinstance(d, ast.Name) and d.id in self.defs:
                self.decorator_function(d.id)
            # click.make_pass_decorator, wraps(...): no options

    def decorator_function(self, name):
        wrapper = next(n for n in self.defs[name].body if isinstance(n, ast.FunctionDef))
        self.decorators(wrapper.decorator_list)

    def command(self, source, func):
        tree = ast.parse(source)
        fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == func)
        self.decorators(fn.decorator_list)


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    ref, out = sys.argv[1], sys.argv[2]
    opts = Options(ref)
    opts.command(read_source(ref, "image_net.py"), "validate_quantized")
    spellings = [r[0] for r in opts.rows]
    assert len(spellings) == len(set(spellings)), "duplicate spelling"
    with open(out, "w") as f:
        f.write(
            "# Options of the reference's `image_net.py validate-quantized` (Qualcomm-AI-research/FP8-quantization\n"
            f"# commit {commit_of(ref)}), made by tools/reference_cli_options.py; do not edit.\n"
            "# spelling\tkind\tdefault\tchoices\tsample\n"
        )
        for row in opts.rows:
            f.write("\t".join(row) + "\n")
    print(f"{len(opts.rows)} spellings written to {out}")


if __name__ == "__main__":
    main()
