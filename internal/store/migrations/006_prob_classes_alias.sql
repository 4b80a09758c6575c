-- prob_classes is computed from class_set when read instead of stored:
-- expanding and storing twelve strings a row was 40% of the server's CPU
-- per ingested prediction (BENCHMARKS.md), and class_set holds the same
-- list. Readers are unchanged; nothing may insert prob_classes any more.
ALTER TABLE {{db}}.predictions DROP COLUMN prob_classes;
ALTER TABLE {{db}}.predictions ADD COLUMN prob_classes Array(String) ALIAS splitByChar(',', class_set);
