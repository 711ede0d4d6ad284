// Proves wirebench's Hessian 2.0 is the encoding Caucho's Java Hessian
// (4.0.38, Debian libhessian-java) reads and writes, both ways:
//
//  1. Decodes every golden vector in formats/tests/golden/hessian/ into the
//     Java classes below (the names and fields docs/protocol.md gives), and
//     writes what it read as JSON (hessian-values.json) for
//     scripts/reference/crosscheck.py to compare with every other format
//     and with the Python checksum.
//  2. Encodes each decoded value again with Hessian2Output and requires the
//     very bytes of the golden file: the Rust encoder writes what Java does.
//  3. Writes messages of its own (java/<name>.hex, and java/expected.json
//     with their values) that use what the Rust encoder never writes:
//     shared objects (references), typed lists, strings and binaries in
//     Java's chunks, surrogate pairs, every compact number form.
//     formats/tests/hessian_from_java.rs decodes them.
//
// Compiled and run by scripts/crosscheck-wire.sh:
//   javac -cp hessian.jar -d DIR HessianCrosscheck.java
//   java --add-opens java.base/java.lang=ALL-UNNAMED -cp DIR:hessian.jar \
//       wirebench.HessianCrosscheck GOLDEN_DIR OUT_DIR
package wirebench;

import com.caucho.hessian.io.Hessian2Input;
import com.caucho.hessian.io.Hessian2Output;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.Serializable;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedList;
import java.util.List;

// The contract's messages as a Java application would declare them. Java
// has no unsigned types: id, userId, records and checksum hold the bits of
// the unsigned values. weight is a float, which Hessian writes as a double.

class MultiplyRequest implements Serializable {
    long a;
    long b;
}

class MultiplyReply implements Serializable {
    long product;
}

class EchoRequest implements Serializable {
    byte[] payload;
}

class EchoReply implements Serializable {
    byte[] payload;
}

class Attribute implements Serializable {
    String key;
    String value;

    Attribute(String key, String value) {
        this.key = key;
        this.value = value;
    }
}

class Location implements Serializable {
    double latitude;
    double longitude;
    String city;
}

class Record implements Serializable {
    long id;
    int userId;
    long timestampMicros;
    String name;
    String email;
    int kind;
    double score;
    float weight;
    boolean active;
    List<String> tags;
    List<Attribute> attributes;
    Location location;
    byte[] fingerprint;
}

class Batch implements Serializable {
    List<Record> records;
}

class DigestReply implements Serializable {
    int records;
    long checksum;
}

public class HessianCrosscheck {
    static int failures = 0;

    public static void main(String[] args) throws Exception {
        Path golden = Path.of(args[0]);
        Path out = Path.of(args[1]);
        Files.createDirectories(out.resolve("java"));

        // 1 and 2: the golden vectors.
        String[][] files = {
            {"multiply", "request", "MultiplyRequest"}, {"multiply", "reply", "MultiplyReply"},
            {"echo-16B", "request", "EchoRequest"}, {"echo-16B", "reply", "EchoReply"},
            {"digest-2", "request", "Batch"}, {"digest-2", "reply", "DigestReply"},
        };
        StringBuilder values = new StringBuilder("[\n");
        Batch goldenBatch = null;
        for (String[] f : files) {
            String label = "hessian      " + f[0] + " " + f[1];
            byte[] bytes = readHex(golden.resolve(f[0] + "." + f[1] + ".hex"));
            Hessian2Input in = new Hessian2Input(new ByteArrayInputStream(bytes));
            Object value = in.readObject();
            if (!value.getClass().getName().equals("wirebench." + f[2])) {
                fail(label + ": Java read a " + value.getClass().getName() + ", not wirebench." + f[2]);
                continue;
            }
            if (!in.isEnd()) {
                fail(label + ": bytes left after the object");
            }
            byte[] again = encode(value);
            if (!Arrays.equals(again, bytes)) {
                fail(label + ": Java writes the value as\n  " + hex(again) + "\nnot\n  " + hex(bytes));
            } else {
                System.out.println("ok   " + label + ": Java reads it and writes the same " + bytes.length + " bytes");
            }
            if (value instanceof Batch) {
                goldenBatch = (Batch) value;
            }
            values.append(values.length() > 2 ? ",\n" : "")
                .append("{\"hex\": \"").append(hex(bytes)).append("\", \"value\": ").append(json(value)).append("}");
        }
        Files.writeString(out.resolve("hessian-values.json"), values.append("\n]\n").toString());
        if (goldenBatch == null || goldenBatch.records.size() < 2) {
            fail("no golden batch of two records to build on");
            System.exit(1);
        }

        // 3: messages only a Java writer makes.
        StringBuilder expected = new StringBuilder("[\n");
        List<Object[]> messages = new ArrayList<>();
        messages.add(new Object[] {"digest-shared", "Digest", "request", sharedBatch(goldenBatch)});
        MultiplyRequest m = new MultiplyRequest();
        m.a = Long.MIN_VALUE;
        m.b = -1;
        messages.add(new Object[] {"multiply-extremes", "Multiply", "request", m});
        MultiplyReply p = new MultiplyReply();
        p.product = 262144;
        messages.add(new Object[] {"multiply-extremes", "Multiply", "reply", p});
        EchoRequest e = new EchoRequest();
        e.payload = bytes(100_000, 7);
        messages.add(new Object[] {"echo-100000B", "Echo", "request", e});
        EchoReply r = new EchoReply();
        r.payload = e.payload;
        messages.add(new Object[] {"echo-100000B", "Echo", "reply", r});
        DigestReply d = new DigestReply();
        d.records = -1;
        d.checksum = Long.MIN_VALUE;
        messages.add(new Object[] {"digest-extremes", "Digest", "reply", d});
        for (Object[] msg : messages) {
            byte[] bytes = encode(msg[3]);
            String file = msg[0] + "." + msg[2] + ".hex";
            Files.writeString(out.resolve("java").resolve(file), "# written by Caucho Hessian 4.0.38\n" + hex(bytes) + "\n");
            // Java reads its own message back to the same value.
            Object back = new Hessian2Input(new ByteArrayInputStream(bytes)).readObject();
            if (!json(back).equals(json(msg[3]))) {
                fail("java " + file + ": Java does not read back what it wrote");
            }
            expected.append(expected.length() > 2 ? ",\n" : "")
                .append("{\"file\": \"").append(file).append("\", \"method\": \"").append(msg[1])
                .append("\", \"what\": \"").append(msg[2]).append("\", \"value\": ").append(json(msg[3])).append("}");
            System.out.println("ok   hessian      java/" + file + ": " + bytes.length + " bytes written for the Rust decoder");
        }
        Files.writeString(out.resolve("java").resolve("expected.json"), expected.append("\n]\n").toString());
        if (failures > 0) {
            System.out.println("HessianCrosscheck: " + failures + " failure(s)");
            System.exit(1);
        }
    }

    /// The golden records, shared and extended: references (a record, a
    /// tag list, an attribute and a location written twice), a typed list
    /// (LinkedList), strings over 32 Ki characters with surrogate pairs
    /// where a chunk would end, a binary over Java's 8 KiB buffer, and the
    /// number forms at their edges.
    static Batch sharedBatch(Batch golden) {
        Record first = golden.records.get(0);
        Record second = golden.records.get(1);
        Location located = first.location != null ? first.location : second.location;
        Record big = new Record();
        big.id = -1L;
        big.userId = -1;
        big.timestampMicros = Long.MIN_VALUE;
        StringBuilder name = new StringBuilder("x".repeat(0x7fff)).appendCodePoint(0x1F600).append("y".repeat(40000));
        big.name = name.toString();
        big.email = "\u00fc".repeat(2000) + "\uD83D\uDE00" + "\u20ac";
        big.kind = 4;
        big.score = 12.25;
        big.weight = 0.5f;
        big.active = false;
        big.tags = first.tags;
        big.attributes = new ArrayList<>();
        big.attributes.add(first.attributes.isEmpty() ? new Attribute("k", "v") : first.attributes.get(0));
        big.attributes.add(new Attribute("\uD83D\uDE00", ""));
        big.location = located;
        big.fingerprint = bytes(20_000, 3);

        Record edges = new Record();
        edges.id = 2_147_483_647L;
        edges.userId = 262_144;
        edges.timestampMicros = -262_144;
        edges.name = "";
        edges.email = "a".repeat(1023);
        edges.kind = 0;
        edges.score = -32768.0;
        edges.weight = Float.MAX_VALUE;
        edges.active = true;
        edges.tags = new LinkedList<>(List.of("one", "two"));
        edges.attributes = new LinkedList<>();
        edges.location = null;
        edges.fingerprint = new byte[0];

        Record small = new Record();
        small.id = 2047;
        small.userId = -16;
        small.timestampMicros = 15;
        small.name = "\u00e9";
        small.email = "b".repeat(32);
        small.kind = 2;
        small.score = Math.PI;
        small.weight = -2.5f;
        small.active = false;
        small.tags = new ArrayList<>(List.of("a", "b", "c", "d", "e", "f", "g", "h", "i"));
        small.attributes = new ArrayList<>();
        small.location = null;
        small.fingerprint = bytes(1024, 5);

        Batch batch = new Batch();
        batch.records = new ArrayList<>(List.of(first, second, first, big, edges, small));
        return batch;
    }

    static byte[] bytes(int n, int seed) {
        byte[] out = new byte[n];
        for (int i = 0; i < n; i++) {
            out[i] = (byte) (i * 31 + seed);
        }
        return out;
    }

    static byte[] encode(Object value) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        Hessian2Output out = new Hessian2Output(bytes);
        out.writeObject(value);
        out.close();
        return bytes.toByteArray();
    }

    static void fail(String message) {
        System.out.println("FAIL " + message);
        failures++;
    }

    static byte[] readHex(Path path) throws IOException {
        StringBuilder digits = new StringBuilder();
        for (String line : Files.readAllLines(path, StandardCharsets.UTF_8)) {
            if (!line.startsWith("#")) {
                digits.append(line.strip());
            }
        }
        byte[] out = new byte[digits.length() / 2];
        for (int i = 0; i < out.length; i++) {
            out[i] = (byte) Integer.parseInt(digits.substring(2 * i, 2 * i + 2), 16);
        }
        return out;
    }

    static String hex(byte[] bytes) {
        StringBuilder s = new StringBuilder();
        for (byte b : bytes) {
            s.append(String.format("%02x", b & 0xff));
        }
        return s.toString();
    }

    /// The value as JSON. Floating-point numbers travel as their IEEE bits
    /// (so nothing depends on how either side prints them), bytes as hex,
    /// strings with every non-ASCII UTF-16 unit escaped.
    static String json(Object v) {
        if (v instanceof MultiplyRequest m) {
            return "{\"a\": " + m.a + ", \"b\": " + m.b + "}";
        }
        if (v instanceof MultiplyReply m) {
            return "{\"product\": " + m.product + "}";
        }
        if (v instanceof EchoRequest e) {
            return "{\"payload\": \"" + hex(e.payload) + "\"}";
        }
        if (v instanceof EchoReply e) {
            return "{\"payload\": \"" + hex(e.payload) + "\"}";
        }
        if (v instanceof DigestReply d) {
            return "{\"records\": " + d.records + ", \"checksum\": " + d.checksum + "}";
        }
        if (v instanceof Batch b) {
            StringBuilder s = new StringBuilder("{\"records\": [");
            for (int i = 0; i < b.records.size(); i++) {
                s.append(i > 0 ? ", " : "").append(json(b.records.get(i)));
            }
            return s.append("]}").toString();
        }
        if (v instanceof Record r) {
            StringBuilder s = new StringBuilder("{");
            s.append("\"id\": ").append(r.id).append(", \"userId\": ").append(r.userId)
                .append(", \"timestampMicros\": ").append(r.timestampMicros)
                .append(", \"name\": ").append(str(r.name)).append(", \"email\": ").append(str(r.email))
                .append(", \"kind\": ").append(r.kind)
                .append(", \"scoreBits\": ").append(Double.doubleToRawLongBits(r.score))
                .append(", \"weightBits\": ").append(Float.floatToRawIntBits(r.weight))
                .append(", \"active\": ").append(r.active).append(", \"tags\": [");
            for (int i = 0; i < r.tags.size(); i++) {
                s.append(i > 0 ? ", " : "").append(str(r.tags.get(i)));
            }
            s.append("], \"attributes\": [");
            for (int i = 0; i < r.attributes.size(); i++) {
                Attribute a = r.attributes.get(i);
                s.append(i > 0 ? ", " : "").append("[").append(str(a.key)).append(", ").append(str(a.value)).append("]");
            }
            s.append("], \"location\": ");
            if (r.location == null) {
                s.append("null");
            } else {
                s.append("{\"latitudeBits\": ").append(Double.doubleToRawLongBits(r.location.latitude))
                    .append(", \"longitudeBits\": ").append(Double.doubleToRawLongBits(r.location.longitude))
                    .append(", \"city\": ").append(str(r.location.city)).append("}");
            }
            return s.append(", \"fingerprint\": \"").append(hex(r.fingerprint)).append("\"}").toString();
        }
        throw new IllegalArgumentException("no JSON for " + v.getClass());
    }

    static String str(String s) {
        StringBuilder out = new StringBuilder("\"");
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c < 0x20 || c > 0x7e) {
                out.append(String.format("\\u%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        return out.append('"').toString();
    }
}
