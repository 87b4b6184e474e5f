// Real Java readers of the yaml and properties outputs, for tests/readers.rs. Run as a
// single-file program on SnakeYAML's classpath (scripts/setup-java):
//
//     java -cp .tools/java/snakeyaml-1.33.jar tests/readers/Readers.java READER[,READER...] FILE...
//
// prints one JSON line per reader and file, in that order, as tests/readers/yaml_readers.py does:
// {"reader":R,"file":F,"pairs":[[key,value],...]} with each key and value a JSON string
// when the reader gave back a String, or {"type":T,"text":...} otherwise; or
// {"reader":R,"file":F,"error":E} when the reader refused the file.

import java.io.ByteArrayInputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Properties;
import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;
import org.yaml.snakeyaml.constructor.SafeConstructor;

public class Readers {
    static Map<?, ?> read(String reader, byte[] data) throws Exception {
        switch (reader) {
            // SnakeYAML 1.33 (YAML 1.1): `new Yaml().load(stream)`, as most code calls it,
            // and with the SafeConstructor.
            case "snakeyaml":
                return asMap(new Yaml().load(new ByteArrayInputStream(data)));
            case "snakeyaml-safe":
                return asMap(new Yaml(new SafeConstructor(new LoaderOptions()))
                        .load(new ByteArrayInputStream(data)));
            // java.util.Properties: load(InputStream) reads ISO-8859-1, load(Reader) here UTF-8.
            case "java-properties": {
                Properties p = new Properties();
                p.load(new ByteArrayInputStream(data));
                return p;
            }
            case "java-properties-utf8": {
                Properties p = new Properties();
                p.load(new InputStreamReader(new ByteArrayInputStream(data), StandardCharsets.UTF_8));
                return p;
            }
            default:
                throw new IllegalArgumentException("unknown reader " + reader);
        }
    }

    static Map<?, ?> asMap(Object doc) {
        if (doc instanceof Map) {
            return (Map<?, ?>) doc;
        }
        throw new IllegalStateException("the document is a "
                + (doc == null ? "null" : doc.getClass().getName()) + ", not a mapping");
    }

    static String json(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '"' || c == '\\') {
                b.append('\\').append(c);
            } else if (c < 0x20 || c > 0x7e) {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        return b.append('"').toString();
    }

    static String scalar(Object x) {
        if (x instanceof String) {
            return json((String) x);
        }
        String type = x == null ? "null" : x.getClass().getName();
        return "{\"type\":" + json(type) + ",\"text\":" + json(String.valueOf(x)) + "}";
    }

    public static void main(String[] args) throws Exception {
        String[] readers = args[0].split(",");
        for (int f = 1; f < args.length; f++) {
            byte[] data = Files.readAllBytes(Path.of(args[f]));
            for (String reader : readers) {
                String head = "{\"reader\":" + json(reader) + ",\"file\":" + json(args[f]) + ",";
                try {
                    StringBuilder pairs = new StringBuilder();
                    for (Map.Entry<?, ?> e : read(reader, data).entrySet()) {
                        pairs.append(pairs.length() == 0 ? "" : ",")
                                .append('[').append(scalar(e.getKey())).append(',')
                                .append(scalar(e.getValue())).append(']');
                    }
                    System.out.println(head + "\"pairs\":[" + pairs + "]}");
                } catch (Exception e) {
                    System.out.println(head + "\"error\":" + json(e.toString()) + "}");
                }
            }
        }
    }
}
