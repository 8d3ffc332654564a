/*
 * The common case of Pusher.push and Pusher.push_with_key, without a Python frame.
 *
 * A keyed push is librdkafka's produce(topic, value, key) with the arguments in
 * another order. No stdlib callable reorders arguments, so in pure Python every
 * push pays for a frame: callgrind counts 3,674 instructions for a raw produce()
 * of 100 bytes, 4,252 through the Python closure and 3,802 through this type.
 * Where the cluster keeps up, the pushing thread sets the pace.
 *
 * It only accelerates the pure-Python closure it is given as `fallback`: any
 * other call shape (headers, keywords, a wrong argument count) goes to the
 * fallback unchanged. A call whose produce() raised one of `retry_on` (a full
 * buffer, bad input, a closed client) goes to `retry`, the Pusher's full method,
 * which tries once more and then waits for room or names the error. That is safe
 * because produce() raises only before it queues the message (ProducerCore.produce
 * keeps the same rule). Pusher.close() swaps `produce` for a function that
 * refuses the push.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *produce;  /* producer.produce, or the refusal once closing began */
    PyObject *topic;
    PyObject *fallback; /* the pure-Python push with the same signature */
    PyObject *retry;    /* takes the same arguments after produce() raised */
    PyObject *retry_on; /* exception types from produce() that `retry` handles */
    PyObject *dict;     /* for functools.update_wrapper: __doc__, __wrapped__, ... */
    PyObject *weakrefs; /* a weak reference to a push works as it does to a function */
    int keyed;          /* (key, value) when true, else (value,) */
} FastPush;

static PyObject *
cleared_error(void)
{
    /* tp_clear only runs on an unreachable object, but a finalizer in the same
       cycle could still reach it: raise instead of following a NULL pointer. */
    PyErr_SetString(PyExc_RuntimeError, "FastPush was cleared by the garbage collector");
    return NULL;
}

static PyObject *
fastpush_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    FastPush *self = (FastPush *)callable;
    /* tp_clear empties every field but `produce` may be set again: test another. */
    if (self->fallback == NULL) {
        return cleared_error();
    }
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t expected = self->keyed ? 2 : 1;

    if (nargs != expected || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
    }
    PyObject *produce_args[3];
    produce_args[0] = self->topic;
    if (self->keyed) {
        produce_args[1] = args[1];
        produce_args[2] = args[0];
    }
    else {
        produce_args[1] = args[0];
    }
    /* produce() may release the GIL, and close() may swap `produce` meanwhile:
       hold our own reference for the length of the call. */
    PyObject *produce = Py_NewRef(self->produce);
    PyObject *result = PyObject_Vectorcall(produce, produce_args, (size_t)(nargs + 1), NULL);
    Py_DECREF(produce);
    if (result != NULL) {
        Py_DECREF(result);
        Py_RETURN_NONE;
    }
    if (!PyErr_ExceptionMatches(self->retry_on)) {
        return NULL;
    }
    PyErr_Clear();
    return PyObject_Vectorcall(self->retry, args, nargsf, NULL);
}

static int
check_callable(const char *name, PyObject *value)
{
    if (!PyCallable_Check(value)) {
        PyErr_Format(PyExc_TypeError, "FastPush: %s must be callable, got %R", name, value);
        return -1;
    }
    return 0;
}

static PyObject *
fastpush_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"produce", "topic", "fallback", "retry", "retry_on", "keyed", NULL};
    PyObject *produce, *topic, *fallback, *retry, *retry_on;
    int keyed;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OUOOO!p:FastPush", keywords, &produce, &topic,
                                     &fallback, &retry, &PyTuple_Type, &retry_on, &keyed)) {
        return NULL;
    }
    if (check_callable("produce", produce) < 0 || check_callable("fallback", fallback) < 0 ||
        check_callable("retry", retry) < 0) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(retry_on); i++) {
        PyObject *item = PyTuple_GET_ITEM(retry_on, i);
        if (!PyType_Check(item) || !PyType_IsSubtype((PyTypeObject *)item,
                                                     (PyTypeObject *)PyExc_BaseException)) {
            PyErr_Format(PyExc_TypeError,
                         "FastPush: retry_on must hold exception types, got %R", item);
            return NULL;
        }
    }

    FastPush *self = (FastPush *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = fastpush_vectorcall;
    self->produce = Py_NewRef(produce);
    self->topic = Py_NewRef(topic);
    self->fallback = Py_NewRef(fallback);
    self->retry = Py_NewRef(retry);
    self->retry_on = Py_NewRef(retry_on);
    self->dict = NULL;
    self->weakrefs = NULL;
    self->keyed = keyed;
    return (PyObject *)self;
}

static int
fastpush_traverse(FastPush *self, visitproc visit, void *arg)
{
    Py_VISIT(self->produce);
    Py_VISIT(self->topic);
    Py_VISIT(self->fallback);
    Py_VISIT(self->retry);
    Py_VISIT(self->retry_on);
    Py_VISIT(self->dict);
    return 0;
}

static int
fastpush_clear(FastPush *self)
{
    Py_CLEAR(self->produce);
    Py_CLEAR(self->topic);
    Py_CLEAR(self->fallback);
    Py_CLEAR(self->retry);
    Py_CLEAR(self->retry_on);
    Py_CLEAR(self->dict);
    return 0;
}

static void
fastpush_dealloc(FastPush *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakrefs != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    fastpush_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
fastpush_repr(FastPush *self)
{
    if (self->fallback == NULL) {
        return PyUnicode_FromString("<FastPush, cleared>");
    }
    return PyUnicode_FromFormat("<FastPush of %R>", self->fallback);
}

static PyObject *
fastpush_get_produce(FastPush *self, void *Py_UNUSED(closure))
{
    if (self->produce == NULL) {
        return cleared_error();
    }
    return Py_NewRef(self->produce);
}

static int
fastpush_set_produce(FastPush *self, PyObject *value, void *Py_UNUSED(closure))
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "FastPush.produce cannot be deleted");
        return -1;
    }
    if (self->fallback == NULL) {
        cleared_error();
        return -1;
    }
    if (!PyCallable_Check(value)) {
        PyErr_Format(PyExc_TypeError, "FastPush.produce must be callable, got %R", value);
        return -1;
    }
    Py_XSETREF(self->produce, Py_NewRef(value));
    return 0;
}

static PyObject *
fastpush_get_fallback(FastPush *self, void *Py_UNUSED(closure))
{
    if (self->fallback == NULL) {
        return cleared_error();
    }
    return Py_NewRef(self->fallback);
}

static PyObject *
fastpush_get_keyed(FastPush *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->keyed);
}

static PyGetSetDef fastpush_getset[] = {
    {"produce", (getter)fastpush_get_produce, (setter)fastpush_set_produce,
     "The callable a push goes to: produce(topic, value[, key]).", NULL},
    {"fallback", (getter)fastpush_get_fallback, NULL,
     "The pure-Python push that takes every other call shape.", NULL},
    {"keyed", (getter)fastpush_get_keyed, NULL, "True for (key, value), False for (value,).",
     NULL},
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL},
};

PyDoc_STRVAR(fastpush_doc,
             "FastPush(produce, topic, fallback, retry, retry_on, keyed)\n"
             "--\n\n"
             "A push that calls produce(topic, value, key) from C, else defers to fallback.");

static PyTypeObject FastPushType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "zeroqueue.kq._fastpush.FastPush",
    .tp_basicsize = sizeof(FastPush),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = fastpush_doc,
    .tp_new = fastpush_new,
    .tp_traverse = (traverseproc)fastpush_traverse,
    .tp_clear = (inquiry)fastpush_clear,
    .tp_dealloc = (destructor)fastpush_dealloc,
    .tp_repr = (reprfunc)fastpush_repr,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(FastPush, vectorcall),
    .tp_dictoffset = offsetof(FastPush, dict),
    .tp_weaklistoffset = offsetof(FastPush, weakrefs),
    .tp_getset = fastpush_getset,
};

static struct PyModuleDef fastpush_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "zeroqueue.kq._fastpush",
    .m_doc = "The Pusher's hot path in C; zeroqueue falls back to Python without it.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__fastpush(void)
{
    PyObject *module = PyModule_Create(&fastpush_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddType(module, &FastPushType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
