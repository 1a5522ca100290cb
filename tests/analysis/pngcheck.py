"""PNG checks shared by the analysis tests: a real PNG, big enough, not blank."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.image  # noqa: E402
import numpy as np  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_problem(path, min_width=400, min_height=300):
    """Why `path` is not a readable, non-blank PNG of at least min_width x min_height; None if it is."""
    if not path.is_file():
        return f"{path}: missing"
    with open(path, "rb") as f:
        if f.read(8) != PNG_SIGNATURE:
            return f"{path}: not a PNG"
    pixels = matplotlib.image.imread(path)
    height, width = pixels.shape[:2]
    if width < min_width or height < min_height:
        return f"{path}: {width}x{height} px, expected at least {min_width}x{min_height}"
    if not np.var(pixels[..., :3]) > 0:
        return f"{path}: blank (every pixel the same)"
    return None
