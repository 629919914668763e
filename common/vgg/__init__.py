"""VGG weights for perceptual losses: Caffe files read without Caffe, converted per method.

- `caffemodel`: a protobuf wire-format reader for `.caffemodel` files (V1 and current formats).
- `layouts`: the VGG19 / VGG-Face layer tables and the conversions to each method's key layout
  (pure NumPy).
- `torch_vgg`: PyTorch feature extractor and perceptual loss with the Caffe input conventions.
- `keras_vgg`: Keras models and `.h5` writers for LSR (imports TensorFlow).

This package's `__init__` imports neither framework, so both sides can use it.
"""
