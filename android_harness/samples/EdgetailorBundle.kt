// Loading an edgetailor bundle on Android with MediaPipe Tasks and reading its results.
//
// NOT COMPILED HERE: edgetailor is developed on Linux without a Kotlin compiler or the Android
// SDK. tests/bundle/test_samples.py checks that the names below are the ones bundles hold, and
// tests/bundle/test_clients.py runs the same model files in MediaPipe Tasks' Python API.
//
// Gradle: implementation("com.google.mediapipe:tasks-vision:<release>")
// Copy the bundle folder (model.tflite, labels.txt, manifest.json) into
// app/src/main/assets/<folder>/ and keep the model uncompressed:
//   android { androidResources { noCompress += "tflite" } }
// Create each task once and reuse it; call close() when done. IMAGE mode runs on the calling
// thread: call it off the main thread.
package ai.edgetailor.sample

import android.content.Context
import android.graphics.Bitmap
import android.graphics.RectF
import com.google.mediapipe.framework.image.BitmapImageBuilder
import com.google.mediapipe.framework.image.ByteBufferExtractor
import com.google.mediapipe.tasks.core.BaseOptions
import com.google.mediapipe.tasks.vision.imageclassifier.ImageClassifier
import com.google.mediapipe.tasks.vision.imagesegmenter.ImageSegmenter
import com.google.mediapipe.tasks.vision.objectdetector.ObjectDetector
import org.json.JSONObject

/** What an app needs from the bundle's manifest.json (schema edgetailor.bundle/1). */
class BundleManifest(json: JSONObject) {
    val task: String = json.getString("task")  // "classification", "detection" or "segmentation"
    val labels: List<String> = json.getJSONArray("labels").let { a -> List(a.length()) { a.getString(it) } }
    private val postprocess: JSONObject? = json.optJSONObject("postprocess")  // detection only
    val maxDetections: Int = postprocess?.getInt("max_detections") ?: -1
    val scoreThreshold: Float = postprocess?.getDouble("score_threshold")?.toFloat() ?: 0f

    companion object {
        fun load(context: Context, folder: String): BundleManifest =
            BundleManifest(JSONObject(context.assets.open("$folder/manifest.json").bufferedReader().use { it.readText() }))
    }
}

data class Scored(val label: String, val score: Float)
data class Detected(val box: RectF, val label: String, val score: Float)  // box in the bitmap's pixels

private fun modelIn(folder: String): BaseOptions =
    BaseOptions.builder().setModelAssetPath("$folder/model.tflite").build()

/** Classification bundle: the top classes, labels from the model's metadata (= manifest labels). */
class BundleClassifier(context: Context, folder: String, top: Int = 3) : AutoCloseable {
    private val classifier = ImageClassifier.createFromOptions(
        context,
        ImageClassifier.ImageClassifierOptions.builder()
            .setBaseOptions(modelIn(folder))
            .setMaxResults(top)
            .build(),
    )

    fun classify(bitmap: Bitmap): List<Scored> =
        classifier.classify(BitmapImageBuilder(bitmap).build())
            .classificationResult().classifications()[0].categories()
            .map { Scored(it.categoryName(), it.score()) }

    override fun close() = classifier.close()
}

/** Detection bundle: at most the manifest's max_detections boxes at or above its score_threshold,
 *  the settings the model's TFLite_Detection_PostProcess and the Core ML NMS both apply. */
class BundleDetector(context: Context, folder: String) : AutoCloseable {
    private val manifest = BundleManifest.load(context, folder)
    private val detector = ObjectDetector.createFromOptions(
        context,
        ObjectDetector.ObjectDetectorOptions.builder()
            .setBaseOptions(modelIn(folder))
            .setMaxResults(manifest.maxDetections)
            .setScoreThreshold(manifest.scoreThreshold)
            .build(),
    )

    fun detect(bitmap: Bitmap): List<Detected> =
        detector.detect(BitmapImageBuilder(bitmap).build()).detections().map { detection ->
            val best = detection.categories()[0]
            Detected(detection.boundingBox(), best.categoryName(), best.score())
        }

    override fun close() = detector.close()
}

/** Segmentation bundle: a class index per pixel of the bitmap (0 = labels[0], the background). */
class BundleSegmenter(context: Context, folder: String) : AutoCloseable {
    private val segmenter = ImageSegmenter.createFromOptions(
        context,
        ImageSegmenter.ImageSegmenterOptions.builder()
            .setBaseOptions(modelIn(folder))
            .setOutputCategoryMask(true)
            .setOutputConfidenceMasks(false)
            .build(),
    )
    val labels: List<String> get() = segmenter.labels

    /** Row-major class indices, bitmap.width x bitmap.height (the mask is resized to the input). */
    fun segment(bitmap: Bitmap): IntArray {
        val mask = segmenter.segment(BitmapImageBuilder(bitmap).build()).categoryMask().get()
        val bytes = ByteBufferExtractor.extract(mask)
        return IntArray(mask.width * mask.height) { bytes.get(it).toInt() and 0xFF }
    }

    override fun close() = segmenter.close()
}
