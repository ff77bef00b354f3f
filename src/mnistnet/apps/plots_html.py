"""An HTML template for ``dvc plots show`` that works without internet.

DVC's default page loads Vega, Vega-Lite and Vega-Embed from a CDN, so offline it is blank.
This template carries those libraries inline, bundled by ``vl-convert-python`` (maintained by
the Vega project) at set-up time rather than committed as third-party code. It keeps DVC's
``{plot_divs}`` placeholder and drops ``{scripts}``, which is where DVC would add the CDN tags.
"""

from __future__ import annotations

import os

from mnistnet.pipeline.storage import write_text

PAGE = """<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>mnistnet plots</title>
  <!-- Vega {vega}, Vega-Lite {vegalite}, Vega-Embed {embed}: bundled by vl-convert -->
  <script>
{bundle}
  </script>
  <style>
    body { font-family: sans-serif; margin: 1em; }
    table { border-spacing: 15px; }
    img { max-width: 100%; }
  </style>
</head>
<body>
  {plot_divs}
</body>
</html>
"""


def offline_template() -> str:
    """The template's text, with the Vega libraries inlined."""
    import vl_convert  # imported here: only this set-up step needs it

    bundle = vl_convert.javascript_bundle().replace("</script", "<\\/script")
    return (
        PAGE.replace("{vega}", vl_convert.get_vega_version())
        .replace("{vegalite}", vl_convert.get_vegalite_versions()[-1])
        .replace("{embed}", vl_convert.get_vega_embed_version())
        .replace("{bundle}", bundle)
    )


def write_offline_template(path: str | os.PathLike) -> None:
    """Write the template to ``path`` (atomically)."""
    write_text(path, offline_template())
