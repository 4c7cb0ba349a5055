/*
 * routes._scorer: the numeric halves of a `fast` (or linear) decision, compiled.
 *
 * Why. A `fast` decision made ~35 numpy calls on arrays of a few dozen entries; each call's fixed
 * cost (argument parsing, dtype resolution, allocation: ~3-5k instructions, and numpy's large
 * dispatch code evicted from the instruction cache between requests) outweighed its arithmetic,
 * and the decision cost the classifier route ~0.29 ms of CPU per request on top of a plain route.
 * These two functions do the same arithmetic in one call each. The Python in routes/_features.py,
 * routes/_linear.py and routes/_embedding.py stays the reference (training, explanations, and any
 * install where this file could not be compiled); tests/routes/test_compiled_scorer.py checks the
 * two agree on every prompt of the routing data.
 *
 * hashed_logit: the linear model's log-odds, bit for bit what LinearClassifier.logit returns
 * (the same hashes and indices as _features._hashed, and numpy's pairwise summation, so the
 * sums round the same way).
 *
 * topic_logit: the static topic prior of one text from its word-piece ids: the mean of the
 * pieces' rows, L2-normalised, its cosine to each centroid, and the log-odds of the
 * similarity-weighted mean label of the `top` nearest. numpy's matrix product (BLAS) orders its
 * sums its own way, so this agrees with the Python to ~1e-6 in the logit, not bit for bit.
 *
 * Only the buffer protocol is used (no numpy headers), so building needs a C compiler and
 * Python's headers, nothing else.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MIX UINT64_C(0x9E3779B97F4A7C15)
#define BIGRAM_SALT UINT64_C(0x632BE59BD9B4E019)
#define FORMAT_MULTIPLIER UINT64_C(2654435761)
#define SALT_MULTIPLE_CHOICE UINT64_C(0x5BD1E995)
#define SALT_FREE_FORM UINT64_C(0x27D4EB2F)
#define PAIRWISE_BLOCK 128 /* numpy's PW_BLOCKSIZE */
#define MAX_TOP 64

static uint32_t crc_table[256];

static void crc_init(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
}

/* zlib.crc32 of the bytes. */
static uint32_t crc32_of(const unsigned char *s, Py_ssize_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (Py_ssize_t i = 0; i < n; i++) c = crc_table[(c ^ s[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

/* numpy's pairwise summation of doubles (loops_utils.h: DOUBLE_pairwise_sum): what ndarray.sum() returns. */
static double pairwise_sum(const double *a, Py_ssize_t n) {
    if (n < 8) {
        double res = 0.;
        for (Py_ssize_t i = 0; i < n; i++) res += a[i];
        return res;
    }
    if (n <= PAIRWISE_BLOCK) {
        double r[8];
        Py_ssize_t i;
        for (int j = 0; j < 8; j++) r[j] = a[j];
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++) r[j] += a[i + j];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res += a[i];
        return res;
    }
    Py_ssize_t n2 = n / 2;
    n2 -= n2 % 8;
    return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

/* x . y in float32 over LANES independent sums (as BLAS's sdot does; the compiler turns the lanes into SIMD). */
#define LANES 8
static double dot(const float *x, const float *y, Py_ssize_t n) {
    float lane[LANES] = {0};
    Py_ssize_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) lane[j] += x[i + j] * y[i + j];
    double total = 0.;
    for (int j = 0; j < LANES; j++) total += lane[j];
    for (; i < n; i++) total += (double)x[i] * y[i];
    return total;
}

/* A read-only, C-contiguous buffer of `itemsize`-byte items of `format` ("d" or "f"). */
static int get_vector(PyObject *obj, Py_buffer *view, const char *format, Py_ssize_t itemsize, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    if (view->itemsize != itemsize || view->format == NULL || strcmp(view->format, format) != 0) {
        PyErr_Format(PyExc_TypeError, "%s must be a contiguous array of '%s' items", what, format);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static double unit_norm(Py_ssize_t size) { return size ? 1.0 / sqrt((double)size) : 0.0; }

/*
 * hashed_logit(dense, dense_weights, words, lower, multiple_choice, bits, hashed_weights, bias) -> float
 *
 * dense: tuple of floats (scan()'s named features); dense_weights: float64 array of the same length;
 * words: list of str (the unigram tokens); lower: the lower-cased window as UTF-8 bytes;
 * hashed_weights: float32 array of 2**bits entries.
 */
static PyObject *hashed_logit(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "hashed_logit takes 8 arguments");
        return NULL;
    }
    PyObject *dense = args[0], *words = args[2], *lower = args[3];
    if (!PyTuple_Check(dense) || !PyList_Check(words) || !PyBytes_Check(lower)) {
        PyErr_SetString(PyExc_TypeError, "dense must be a tuple, words a list and lower bytes");
        return NULL;
    }
    int multiple_choice = PyObject_IsTrue(args[4]);
    long bits = PyLong_AsLong(args[5]);
    double bias = PyFloat_AsDouble(args[7]);
    if (multiple_choice < 0 || PyErr_Occurred()) return NULL;
    if (bits < 1 || bits > 40) {
        PyErr_SetString(PyExc_ValueError, "bits must be within [1, 40]");
        return NULL;
    }
    Py_buffer dense_view, weight_view;
    if (get_vector(args[1], &dense_view, "d", sizeof(double), "dense_weights") < 0) return NULL;
    if (get_vector(args[6], &weight_view, "f", sizeof(float), "hashed_weights") < 0) {
        PyBuffer_Release(&dense_view);
        return NULL;
    }
    PyObject *result = NULL;
    double *products = NULL, *entries = NULL;
    uint64_t *token_hashes = NULL;
    const Py_ssize_t n_dense = PyTuple_GET_SIZE(dense);
    const Py_ssize_t n_words = PyList_GET_SIZE(words);
    const Py_ssize_t n_bytes = PyBytes_GET_SIZE(lower);
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(lower);
    const uint64_t mask = (UINT64_C(1) << bits) - 1;
    const double *dense_weights = (const double *)dense_view.buf;
    const float *weights = (const float *)weight_view.buf;

    if (dense_view.len / (Py_ssize_t)sizeof(double) != n_dense) {
        PyErr_SetString(PyExc_ValueError, "dense and dense_weights differ in length");
        goto done;
    }
    if (weight_view.len / (Py_ssize_t)sizeof(float) != (Py_ssize_t)(mask + 1)) {
        PyErr_SetString(PyExc_ValueError, "hashed_weights must hold 2**bits entries");
        goto done;
    }
    products = PyMem_Malloc((size_t)(n_dense ? n_dense : 1) * sizeof(double));
    if (products == NULL) goto nomemory;
    for (Py_ssize_t i = 0; i < n_dense; i++) {
        double value = PyFloat_AsDouble(PyTuple_GET_ITEM(dense, i));
        if (value == -1.0 && PyErr_Occurred()) goto done;
        products[i] = dense_weights[i] * value;
    }

    /* The shared entries: unigrams, bigrams, 3-grams then 4-grams of bytes; then their format copy. */
    const Py_ssize_t n_bigrams = n_words > 1 ? n_words - 1 : 0;
    const Py_ssize_t n_tri = n_bytes >= 3 ? n_bytes - 2 : 0, n_quad = n_bytes >= 4 ? n_bytes - 3 : 0;
    const Py_ssize_t n_chars = n_tri + n_quad;
    const Py_ssize_t n_shared = n_words + n_bigrams + n_chars;
    token_hashes = PyMem_Malloc((size_t)(n_words ? n_words : 1) * sizeof(uint64_t));
    entries = PyMem_Malloc((size_t)(n_shared ? 2 * n_shared : 1) * sizeof(double));
    if (token_hashes == NULL || entries == NULL) goto nomemory;
    for (Py_ssize_t i = 0; i < n_words; i++) {
        Py_ssize_t size;
        const char *word = PyUnicode_AsUTF8AndSize(PyList_GET_ITEM(words, i), &size);
        if (word == NULL) goto done;
        token_hashes[i] = crc32_of((const unsigned char *)word, size);
    }
    const uint64_t salt = multiple_choice ? SALT_MULTIPLE_CHOICE : SALT_FREE_FORM;
    const double norms[3] = {unit_norm(n_words), unit_norm(n_bigrams), unit_norm(n_chars)};
    const int shift = 64 - (int)bits;
    Py_ssize_t k = 0;
#define ENTRY(index, norm)                                                                       \
    do {                                                                                         \
        uint64_t shared_ = (index);                                                              \
        uint64_t copy_ = (shared_ * FORMAT_MULTIPLIER + salt) & mask; /* numpy's int64 wraps */  \
        entries[k] = (double)weights[shared_] * (norm);                                          \
        entries[n_shared + k] = (double)weights[copy_] * (norm);                                 \
        k++;                                                                                     \
    } while (0)
    for (Py_ssize_t i = 0; i < n_words; i++) ENTRY(token_hashes[i] & mask, norms[0]);
    for (Py_ssize_t i = 0; i < n_bigrams; i++)
        ENTRY(((token_hashes[i] * BIGRAM_SALT + token_hashes[i + 1]) * MIX) >> shift, norms[1]);
    const uint64_t tri_offset = 3 * 257 * 257 * 257, quad_offset = UINT64_C(4) * 257 * 257 * 257 * 257;
    for (Py_ssize_t i = 0; i < n_tri; i++) {
        uint64_t key = ((uint64_t)data[i] * 257 + data[i + 1]) * 257 + data[i + 2];
        ENTRY(((key + tri_offset) * MIX) >> shift, norms[2]);
    }
    for (Py_ssize_t i = 0; i < n_quad; i++) {
        uint64_t key = (((uint64_t)data[i] * 257 + data[i + 1]) * 257 + data[i + 2]) * 257 + data[i + 3];
        ENTRY(((key + quad_offset) * MIX) >> shift, norms[2]);
    }
#undef ENTRY
    result = PyFloat_FromDouble((bias + pairwise_sum(products, n_dense)) + pairwise_sum(entries, 2 * n_shared));
    goto done;
nomemory:
    PyErr_NoMemory();
done:
    PyMem_Free(products);
    PyMem_Free(entries);
    PyMem_Free(token_hashes);
    PyBuffer_Release(&dense_view);
    PyBuffer_Release(&weight_view);
    return result;
}

/*
 * topic_logit(ids, vectors, centroids, values, top, temperature, p_clip) -> float
 *
 * ids: list of row numbers of `vectors` (float32, rows x dims), at least one; centroids: float32,
 * k x dims; values: float64, k (each centroid's label); 1 <= top <= min(k, 64).
 */
static PyObject *topic_logit(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "topic_logit takes 7 arguments");
        return NULL;
    }
    PyObject *ids = args[0];
    if (!PyList_Check(ids) || PyList_GET_SIZE(ids) == 0) {
        PyErr_SetString(PyExc_ValueError, "ids must be a non-empty list");
        return NULL;
    }
    Py_ssize_t top = PyLong_AsSsize_t(args[4]);
    double temperature = PyFloat_AsDouble(args[5]), p_clip = PyFloat_AsDouble(args[6]);
    if (PyErr_Occurred()) return NULL;
    Py_buffer vector_view, centroid_view, value_view;
    if (get_vector(args[1], &vector_view, "f", sizeof(float), "vectors") < 0) return NULL;
    if (get_vector(args[2], &centroid_view, "f", sizeof(float), "centroids") < 0) {
        PyBuffer_Release(&vector_view);
        return NULL;
    }
    if (get_vector(args[3], &value_view, "d", sizeof(double), "values") < 0) {
        PyBuffer_Release(&vector_view);
        PyBuffer_Release(&centroid_view);
        return NULL;
    }
    PyObject *result = NULL;
    float *mean = NULL;
    const Py_ssize_t k = value_view.len / (Py_ssize_t)sizeof(double);
    const Py_ssize_t dims = (vector_view.ndim == 2) ? vector_view.shape[1] : 0;
    const Py_ssize_t rows = (vector_view.ndim == 2) ? vector_view.shape[0] : 0;
    if (dims == 0 || centroid_view.ndim != 2 || centroid_view.shape[0] != k || centroid_view.shape[1] != dims) {
        PyErr_SetString(PyExc_ValueError, "vectors, centroids and values do not match");
        goto done;
    }
    if (top < 1 || top > k || top > MAX_TOP) {
        PyErr_SetString(PyExc_ValueError, "top must be within [1, min(len(values), 64)]");
        goto done;
    }
    mean = PyMem_Malloc((size_t)dims * sizeof(float));
    if (mean == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const float *vectors = (const float *)vector_view.buf, *centroids = (const float *)centroid_view.buf;
    const double *values = (const double *)value_view.buf;
    const Py_ssize_t n_ids = PyList_GET_SIZE(ids);
    /* The mean row, as numpy's float32 reduction over axis 0 and division compute it. */
    for (Py_ssize_t i = 0; i < n_ids; i++) {
        Py_ssize_t row = PyLong_AsSsize_t(PyList_GET_ITEM(ids, i));
        if (row == -1 && PyErr_Occurred()) goto done;
        if (row < 0 || row >= rows) {
            PyErr_SetString(PyExc_IndexError, "a word-piece id is outside the table");
            goto done;
        }
        const float *vector = vectors + row * dims;
        if (i == 0)
            memcpy(mean, vector, (size_t)dims * sizeof(float));
        else
            for (Py_ssize_t d = 0; d < dims; d++) mean[d] += vector[d];
    }
    for (Py_ssize_t d = 0; d < dims; d++) mean[d] /= (float)n_ids;
    const double norm = fmax(sqrt(dot(mean, mean, dims)), 1e-12);
    /* The `top` most similar centroids, kept sorted by similarity (descending). */
    double best[MAX_TOP];
    Py_ssize_t best_index[MAX_TOP], found = 0;
    for (Py_ssize_t c = 0; c < k; c++) {
        double sim = dot(mean, centroids + c * dims, dims) / norm;
        if (found == top && sim <= best[top - 1]) continue;
        Py_ssize_t at = found < top ? found++ : top - 1;
        while (at > 0 && best[at - 1] < sim) {
            best[at] = best[at - 1];
            best_index[at] = best_index[at - 1];
            at--;
        }
        best[at] = sim;
        best_index[at] = c;
    }
    double weighted = 0., total = 0.;
    for (Py_ssize_t i = 0; i < top; i++) {
        double weight = exp(temperature * (best[i] - best[0]));
        weighted += values[best_index[i]] * weight;
        total += weight;
    }
    double p = fmin(fmax(weighted / total, p_clip), 1.0 - p_clip);
    result = PyFloat_FromDouble(log(p) - log1p(-p));
done:
    PyMem_Free(mean);
    PyBuffer_Release(&vector_view);
    PyBuffer_Release(&centroid_view);
    PyBuffer_Release(&value_view);
    return result;
}

static PyMethodDef methods[] = {
    {"hashed_logit", (PyCFunction)(void (*)(void))hashed_logit, METH_FASTCALL,
     "The linear model's log-odds from extract()'s dense values, words and lower-cased bytes."},
    {"topic_logit", (PyCFunction)(void (*)(void))topic_logit, METH_FASTCALL,
     "The static topic prior's log-odds from a text's word-piece ids."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "routes._scorer",
    "The numeric halves of a fast or linear decision, compiled (see routes/_scorer.c).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__scorer(void) {
    crc_init();
    return PyModule_Create(&module);
}
