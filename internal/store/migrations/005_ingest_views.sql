-- Accuracy from labels, computed at read time so late labels count as soon as
-- they arrive. FINAL collapses redelivered predictions and labels; with
-- several annotators for one event, ANY JOIN takes one of their labels.
CREATE VIEW IF NOT EXISTS {{db}}.label_accuracy AS
SELECT model, model_version, source, label,
       count() AS labelled,
       sum(predicted_class = label) AS correct,
       sum(predicted_class = label) / count() AS accuracy
FROM (SELECT event_id, model, model_version, source, predicted_class FROM {{db}}.predictions FINAL WHERE task = 'classification')
ANY INNER JOIN (SELECT event_id, label FROM {{db}}.labels FINAL WHERE label != '') USING event_id
GROUP BY model, model_version, source, label;

-- Detectors are watched like classifiers: boxes per image, images without a
-- box, score quantiles and the most frequent classes, per hour.
CREATE VIEW IF NOT EXISTS {{db}}.detection_summary AS
SELECT model, model_version, source, toStartOfHour(ts) AS hour,
       count() AS images,
       avg(length(box_classes)) AS boxes_per_image,
       countIf(length(box_classes) = 0) AS images_without_boxes,
       quantilesArray(0.1, 0.5, 0.9)(box_scores) AS score_quantiles,
       topKArray(10)(box_classes) AS top_classes
FROM {{db}}.predictions FINAL
WHERE task = 'detection'
GROUP BY model, model_version, source, hour;
