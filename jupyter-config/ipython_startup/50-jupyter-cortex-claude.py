# Installed by jupyter-cortex-claude into <sys.prefix>/etc/ipython/startup, which IPython runs in
# every shell and kernel of this environment: it registers %cortex_claude without %load_ext.
# It only registers the magic (no network, no gateway) and can never break a kernel's start.


def _jupyter_cortex_claude_autoload() -> None:
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            shell.extension_manager.load_extension("jupyter_cortex_claude")
    except Exception:
        pass


_jupyter_cortex_claude_autoload()
del _jupyter_cortex_claude_autoload
