"""Export a trained Keras network to ONNX, the format the ``segment`` rule runs.

Why a second format: importing TensorFlow takes 3-5 s on the project's 2-core machine,
more than all the rest of a segmentation job, and a cohort run pays it once per subject
(1,381 times). ONNX Runtime imports in about 0.3 s and runs the same network on the CPU
or, with the onnxruntime-gpu package, on a CUDA GPU, chosen at run time. TensorFlow stays
the training framework; the exported file carries the same weights and is checked against
the Keras model's output when it is written.

The exporter walks the functional model's layers in order and knows exactly the layer
types :func:`msprofile.segmentation.model.build_attention_unet` uses; anything else raises.
Inside the graph tensors are NCHW (ONNX's convention); the graph's input and output stay
NHWC like the Keras model's: input ``flair`` (batch, height, width, channels), output
``probabilities`` (batch, height, width, classes).
"""

from __future__ import annotations

import numpy as np

INPUT_NAME = "flair"
OUTPUT_NAME = "probabilities"
OPSET = 17


def keras_to_onnx(model):
    """Return an ``onnx.ModelProto`` computing the same function as the Keras ``model``."""
    import onnx
    from keras import layers
    from onnx import TensorProto, helper, numpy_helper

    nodes, initialisers = [], []
    names: dict[int, str] = {}

    def name_of(tensor) -> str:
        return names[id(tensor)]

    def add_node(op, inputs, outputs, **attributes):
        nodes.append(helper.make_node(op, inputs, outputs, name=f"{outputs[0]}_{op}", **attributes))

    def add_weight(name, array):
        initialisers.append(numpy_helper.from_array(np.asarray(array, dtype=np.float32), name))
        return name

    def activation(layer, pre: str, out: str):
        kind = layer.activation.__name__ if hasattr(layer, "activation") else "linear"
        ops = {"relu": ("Relu", {}), "sigmoid": ("Sigmoid", {}), "softmax": ("Softmax", {"axis": 1})}
        if kind == "linear":
            add_node("Identity", [pre], [out])
        elif kind in ops:
            op, attributes = ops[kind]
            add_node(op, [pre], [out], **attributes)
        else:
            raise ValueError(f"layer {layer.name}: activation {kind} is not supported by the exporter")

    for layer in model.layers:
        out = f"t_{layer.name}"  # never the graph input or output name
        if isinstance(layer, layers.InputLayer):
            names[id(layer.output)] = out
            add_node("Transpose", [INPUT_NAME], [out], perm=[0, 3, 1, 2])
            continue
        inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
        sources = [name_of(t) for t in inputs]
        names[id(layer.output)] = out
        if isinstance(layer, layers.Conv2D) and not isinstance(layer, layers.Conv2DTranspose):
            kernel, bias = layer.get_weights()
            k = kernel.shape[0]
            if layer.strides != (1, 1) or layer.dilation_rate != (1, 1) or (layer.padding != "same" and k != 1):
                raise ValueError(f"layer {layer.name}: only stride-1 'same' (or 1 x 1) convolutions are supported")
            w = add_weight(f"{out}_W", kernel.transpose(3, 2, 0, 1))
            b = add_weight(f"{out}_B", bias)
            add_node("Conv", [sources[0], w, b], [f"{out}_pre"], kernel_shape=[k, k], pads=[(k - 1) // 2] * 4)
            activation(layer, f"{out}_pre", out)
        elif isinstance(layer, layers.Conv2DTranspose):
            kernel, bias = layer.get_weights()
            k = kernel.shape[0]
            if layer.strides != (k, k):
                raise ValueError(f"layer {layer.name}: only transposed convolutions with stride = kernel are supported")
            w = add_weight(f"{out}_W", kernel.transpose(3, 2, 0, 1))
            b = add_weight(f"{out}_B", bias)
            add_node("ConvTranspose", [sources[0], w, b], [f"{out}_pre"], kernel_shape=[k, k], strides=[k, k])
            activation(layer, f"{out}_pre", out)
        elif isinstance(layer, layers.MaxPooling2D):
            add_node("MaxPool", sources, [out], kernel_shape=list(layer.pool_size), strides=list(layer.strides))
        elif isinstance(layer, layers.Dropout):
            add_node("Identity", sources, [out])
        elif isinstance(layer, layers.Activation):
            activation(layer, sources[0], out)
        elif isinstance(layer, layers.Add):
            add_node("Add", sources, [out])
        elif isinstance(layer, layers.Multiply):
            add_node("Mul", sources, [out])
        elif isinstance(layer, layers.Concatenate):
            if layer.axis not in (-1, 3):
                raise ValueError(f"layer {layer.name}: only channel concatenation is supported")
            add_node("Concat", sources, [out], axis=1)
        else:
            raise ValueError(f"layer {layer.name} ({type(layer).__name__}) is not supported by the exporter")

    add_node("Transpose", [name_of(model.output)], [OUTPUT_NAME], perm=[0, 2, 3, 1])
    classes = int(model.output.shape[-1])
    channels = int(model.input.shape[-1])
    graph = helper.make_graph(
        nodes,
        model.name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", "height", "width", channels])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", "height", "width", classes])],
        initialisers,
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="msprofile")
    onnx.checker.check_model(onnx_model)
    return onnx_model


def float16_weights(onnx_model):
    """The network with its weights stored as float16 and cast back to float32 when the session
    starts (ONNX Runtime folds the casts): half the file, the same float32 arithmetic, outputs
    that differ by the weights' rounding only (relative 2^-11). For the ensemble members, which
    would otherwise double the repository's model files. Takes and returns an ``onnx.ModelProto``."""
    from onnx import TensorProto, helper, numpy_helper

    graph = onnx_model.graph
    casts, stored = [], []
    for initialiser in graph.initializer:
        weights = numpy_helper.to_array(initialiser)
        half = f"{initialiser.name}_float16"
        stored.append(numpy_helper.from_array(weights.astype(np.float16), half))
        casts.append(helper.make_node("Cast", [half], [initialiser.name], name=f"{half}_Cast", to=TensorProto.FLOAT))
    del graph.initializer[:]
    graph.initializer.extend(stored)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return onnx_model


#: Largest difference of a probability that storing the weights as float16 may make
#: (:func:`checked_onnx`). Rounding each weight by up to 2^-11 of itself moves the logits of a
#: trained network by a few hundredths, and a steep softmax turns that into up to a few
#: hundredths of probability at the voxels between two classes (1.06e-2 for a fold of
#: msprofile-default fine-tuned on one ISBI scan); a wrongly exported network is off by tenths.
HALF_WEIGHTS_ATOL = 0.05


def checked_onnx(model, check_input: np.ndarray, *, atol: float = 1e-4, half_weights: bool = False) -> bytes:
    """``model`` exported to ONNX and serialised, after checking that ONNX Runtime reproduces
    the Keras output on ``check_input`` (N, H, W, C) within ``atol``; RuntimeError if not.

    ``half_weights``: store the weights as float16 (:func:`float16_weights`). The float32 export
    is checked within ``atol`` first (that proves the graph), then the float16 network against
    the Keras output within :data:`HALF_WEIGHTS_ATOL` (the weights' rounding, not an error).
    """
    import onnx

    expected = np.asarray(model(check_input, training=False))

    def check(serialised: bytes, tolerance: float, what: str) -> None:
        actual = OnnxNetwork(serialised, device="cpu")(check_input)
        worst = float(np.max(np.abs(actual - expected)))
        if worst > tolerance:
            raise RuntimeError(f"{what} differs from the Keras model by {worst:.2e} (> {tolerance})")

    exported = keras_to_onnx(model)
    full = exported.SerializeToString()
    check(full, atol, "ONNX export")
    if not half_weights:
        return full
    half = float16_weights(exported)
    onnx.checker.check_model(half)
    serialised = half.SerializeToString()
    check(serialised, max(atol, HALF_WEIGHTS_ATOL), "ONNX export with float16 weights")
    return serialised


class OnnxNetwork:
    """An ONNX network ready to run: ``network(batch)`` maps (N, H, W, C) float32 slices to
    (N, H, W, classes) probabilities. ``model``: the serialised network
    (:func:`msprofile.io.models.load_onnx`). ``device``: ``"cpu"``, ``"gpu"`` (CUDA, required)
    or ``"auto"`` (CUDA when ONNX Runtime offers it). ``threads``: CPU threads (0: the
    runtime's default)."""

    def __init__(self, model: bytes, device: str = "auto", threads: int = 0):
        import onnxruntime as ort

        available = ort.get_available_providers()
        wants_gpu = device in ("gpu", "auto") and "CUDAExecutionProvider" in available
        if device == "gpu" and not wants_gpu:
            raise RuntimeError(
                "segmentation.device is 'gpu' but ONNX Runtime offers no CUDA provider "
                "(install the gpu extra: onnxruntime-gpu, on a machine with a CUDA GPU)"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # The default arena keeps every activation buffer it ever allocated; a job that runs
        # one subject and exits gains nothing from it and would hold gigabytes.
        options.enable_cpu_mem_arena = False
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if wants_gpu else ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(model, sess_options=options, providers=providers)
        self.device = "gpu" if self.session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)})[0]
