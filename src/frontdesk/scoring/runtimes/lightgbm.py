"""LightGBMRuntime: any LightGBM text model over named features."""

from __future__ import annotations

import numpy as np

from ..base import Scorer
from ..protocol import InferenceRequest, InferenceResponse, ProtocolError, Tensor


class LightGBMRuntime(Scorer):
    """Parameters: ``model_file`` (LightGBM text model).

    Inputs: one ``input`` tensor of shape [n, n_features] (columns in the
    model's feature order), or one [n] tensor per feature, named as in the model.
    """

    def load(self) -> None:
        import lightgbm as lgb

        path = self.settings.path(self.settings.parameters["model_file"])
        self.booster = lgb.Booster(model_file=str(path))
        self.features = list(self.booster.feature_name())
        self.inputs = [{"name": "input", "datatype": "FP64", "shape": [-1, len(self.features)]}] + [
            {"name": f, "datatype": "FP64", "shape": [-1]} for f in self.features
        ]
        self.outputs = [{"name": "predict", "datatype": "FP64", "shape": [-1]}]

    def warmup(self) -> InferenceRequest:
        return InferenceRequest(
            inputs=[Tensor("input", [1, len(self.features)], "FP64", [0.0] * len(self.features))]
        )

    def _matrix(self, request: InferenceRequest) -> np.ndarray:
        names = {t.name: t for t in request.inputs}
        if "input" in names:
            t = names["input"]
            if len(t.shape) != 2 or t.shape[1] != len(self.features):
                raise ProtocolError(f"input 'input' must have shape [n, {len(self.features)}]")
            return np.asarray(t.data, dtype=float).reshape(t.shape)
        missing = [f for f in self.features if f not in names]
        if missing:
            raise ProtocolError(f"missing feature tensors: {', '.join(missing[:5])}")
        cols = [names[f] for f in self.features]
        n = cols[0].shape[0] if cols[0].shape else 0
        if any(c.shape != [n] for c in cols):
            raise ProtocolError("every feature tensor must have the same shape [n]")
        return np.column_stack([np.asarray(c.data, dtype=float) for c in cols])

    def predict(self, request: InferenceRequest) -> InferenceResponse:
        x = self._matrix(request)
        y = self.booster.predict(x) if len(x) else np.zeros(0)
        return self.response(request, [Tensor("predict", [len(y)], "FP64", [float(v) for v in y])])
