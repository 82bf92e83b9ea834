"""Keeps a path option's value from choosing pytest's rootdir.

pytest picks its rootdir and ini file before it loads plugins, so in ``--llmswap-json ../out.json`` it does
not yet know that ``../out.json`` is an option's value: an existing file there counts as a test path, the
rootdir moves to the common ancestor and ``[tool.llmswap]`` (and the pytest settings) are left behind. Once
the plugin's options are known, :func:`restore_rootdir` redoes pytest's choice without those values and puts
it right where it differs. (``--opt=PATH`` is one token pytest already skips.)
"""

from __future__ import annotations

import pytest

#: The plugin's options that take a path, by their destination.
PATH_OPTIONS = {"llmswap_json": "--llmswap-json", "llmswap_report": "--llmswap-report",
                "llmswap_markdown": "--llmswap-markdown", "llmswap_cache_dir": "--llmswap-cache-dir"}


def restore_rootdir(config: pytest.Config, args: list[str]) -> None:
    """Re-determine the rootdir and ini file when a path option was given as ``--opt PATH``; on a change,
    use them and prepend the right ini file's ``addopts`` to ``args`` (pytest parses them once more)."""
    from _pytest.config.findpaths import determine_setup

    ns = config.known_args_namespace
    spaced = [i for i, a in enumerate(args[:-1]) if a in PATH_OPTIONS.values()]
    if not spaced or ns.inifilename or ns.rootdir:
        return
    try:  # pytest's own function, as its parse calls it (keyword-only since pytest 9)
        rootpath, inipath, inicfg, *ignored = determine_setup(
            inifile=None, override_ini=ns.override_ini, args=ns.file_or_dir, rootdir_cmd_arg=None,
            invocation_dir=config.invocation_params.dir)
    except TypeError:  # an older pytest: write --opt=PATH there
        return
    if (rootpath, inipath) == (config.rootpath, config.inipath):
        return
    guessed = str(config.inipath.parent if config.inipath else config.rootpath)
    config._rootpath, config._inipath, config._inicfg = rootpath, inipath, inicfg
    config._ignored_config_files = ignored[0] if ignored else []
    config._inicache.clear()
    config._parser.extra_info.update(rootdir=str(rootpath), inifile=str(inipath))
    if ns.confcutdir == guessed:  # pytest derived it from the wrong ini file
        ns.confcutdir = str(inipath.parent if inipath else rootpath)
    args[:0] = config.getini("addopts")
