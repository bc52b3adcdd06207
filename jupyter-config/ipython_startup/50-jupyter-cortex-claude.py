# Installed by jupyter-cortex-claude into <sys.prefix>/etc/ipython/startup, which IPython runs in
# every shell and kernel of this environment: it registers %cortex_claude without %load_ext.
# It only registers the magic (no network, no gateway) and can never break a kernel's start.
# It calls the extension's hook directly rather than through IPython's extension manager, so a
# documented `%load_ext jupyter_cortex_claude` later still loads quietly (the manager would answer
# "already loaded ... use %reload_ext"); registering the magics twice is harmless.


def _jupyter_cortex_claude_autoload() -> None:
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            from jupyter_cortex_claude import load_ipython_extension

            load_ipython_extension(shell)
    except Exception:
        pass


_jupyter_cortex_claude_autoload()
del _jupyter_cortex_claude_autoload
