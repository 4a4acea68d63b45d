"""Keras 3 (TensorFlow backend) version of the benchmark ResNet and its measurements.

Imported only inside a measurement subprocess (child.py), after KERAS_BACKEND
and the thread count are set in the environment.
"""

import time

import keras
import tensorflow as tf
from keras import layers

# Variant name -> (step kind, XLA jit_compile). "on-batch" is Keras's own
# train_on_batch / predict_on_batch. "tf-function" is a hand-written tf.function step.
VARIANTS = {
    "keras-on-batch": ("on-batch", False),
    "keras-on-batch-xla": ("on-batch", True),
    "keras-tf-function": ("tf-function", False),
    "keras-tf-function-xla": ("tf-function", True),
}


def build_resnet18(input_shape, classes):
    """Build ResNet-18 as torchvision does, with Keras's layers and initializers."""
    inputs = keras.Input(shape=input_shape)
    x = layers.ZeroPadding2D(3)(inputs)
    x = layers.Conv2D(64, 7, strides=2, use_bias=False)(x)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.MaxPooling2D(pool_size=3, strides=2, padding="same")(x)
    channels = 64
    for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block in range(2):
            step = stride if block == 0 else 1
            y = layers.Conv2D(width, 3, strides=step, padding="same", use_bias=False)(x)
            y = layers.ReLU()(layers.BatchNormalization()(y))
            y = layers.Conv2D(width, 3, padding="same", use_bias=False)(y)
            y = layers.BatchNormalization()(y)
            shortcut = x
            if step != 1 or channels != width:
                shortcut = layers.Conv2D(width, 1, strides=step, use_bias=False)(x)
                shortcut = layers.BatchNormalization()(shortcut)
            x = layers.ReLU()(layers.add([y, shortcut]))
            channels = width
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(classes)(x))


def build_model(input_shape, classes):
    """Build the network that `configure` chose: by default the tutorial ResNet, with Keras
    defaults (Glorot-uniform kernels, zero biases)."""
    if _model == "resnet18":
        return build_resnet18(input_shape, classes)
    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(64, 7, padding="same")(inputs)
    x = layers.BatchNormalization(momentum=0.99, epsilon=1e-3)(x)
    x = layers.ReLU()(x)
    x = layers.MaxPooling2D(pool_size=3, strides=3, padding="valid")(x)
    for _ in range(3):
        y = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
        y = layers.Conv2D(64, 3, padding="same")(y)
        x = layers.ReLU()(layers.add([y, x]))
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(classes)(x)
    return keras.Model(inputs, outputs)


def _adam():
    return keras.optimizers.Adam(learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7)


def _loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


_model = "tutorial"


def configure(threads, seed, model):
    global _model
    _model = model
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    keras.utils.set_random_seed(seed)


def backend_info():
    return {"tensorflow": tf.__version__, "keras": keras.__version__}


def _train_step(variant, model):
    kind, xla = VARIANTS[variant]
    optimizer = _adam()
    loss_fn = _loss()

    if kind == "on-batch":
        model.compile(optimizer=optimizer, loss=loss_fn, jit_compile=xla)
        return lambda x, y: model.train_on_batch(x, y)

    optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=xla)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    return lambda x, y: step(x, y).numpy()


def _infer_step(variant, model):
    kind, xla = VARIANTS[variant]

    if kind == "on-batch":
        model.compile(jit_compile=xla)
        return lambda x: model.predict_on_batch(x)

    @tf.function(jit_compile=xla)
    def step(x):
        return model(x, training=False)

    return lambda x: step(x).numpy()


def measure_steps(variant, case, x, y, classes, warmup, steps):
    """Time `warmup + steps` training or inference steps on one batch; return step seconds."""
    model = build_model(x.shape[1:], classes)
    images = tf.constant(x)
    labels = tf.constant(y)

    if case == "train":
        train = _train_step(variant, model)

        def step():
            return train(images, labels)
    else:
        infer = _infer_step(variant, model)

        def step():
            return infer(images)

    for _ in range(warmup):
        step()
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    return seconds


def run_job(data, classes, epochs, batch_size):
    """Run `model.fit` as the tutorial does, with Keras's default jit_compile ("auto")."""
    x_train, y_train, x_val, y_val = data
    model = build_model(x_train.shape[1:], classes)
    model.compile(optimizer=_adam(), loss=_loss())
    fit = model.fit(
        x_train,
        y_train,
        batch_size=batch_size,
        epochs=epochs,
        validation_data=(x_val, y_val),
        verbose=0,
    )
    losses = fit.history["loss"]
    val_losses = fit.history["val_loss"]
    return [{"loss": loss, "val_loss": val} for loss, val in zip(losses, val_losses)]
