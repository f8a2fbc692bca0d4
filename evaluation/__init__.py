"""Evaluating, recording and watching a saved policy; acting with it from Python (`Policy`)
and exporting it as an ONNX model (`export_onnx`).

`Policy` and `export_onnx` are re-exported here, the shortest import a user in the repository
root has: `from evaluation import Policy` (the project runs as scripts, not as an installed
package, so a top-level name of its own would be one more folder outside the layers).
"""

from evaluation.export import export_onnx
from evaluation.policy import Policy

__all__ = ["Policy", "export_onnx"]
