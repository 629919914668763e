"""VGG weights for perceptual losses: Caffe files read without Caffe, converted per method.

- `caffemodel`: a protobuf wire-format reader for `.caffemodel` files (V1 and current formats).
- `layouts`: the VGG19 / VGG-Face layer tables and input conventions.
- `convert`: Caffe blobs to each method's layout (torchvision, FSTH, Keras) and the metadata
  sidecar; pure NumPy.
- `torch_vgg`: PyTorch feature extractor and perceptual loss with the Caffe input conventions
  (imports torch).
- `keras_vgg`: LSR's Keras VGG-Face model and the `.h5` writers (imports TensorFlow).

This `__init__` imports neither framework, so both sides can use the package.
"""
