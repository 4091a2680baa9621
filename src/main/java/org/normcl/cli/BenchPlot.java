package org.normcl.cli;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.FontMetrics;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.Stroke;
import java.awt.geom.AffineTransform;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.OutputStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import javax.imageio.ImageIO;

/**
 * Draws {@code normcl bench} records as a PNG: GB/s (y) against shape (x, in the order measured),
 * one solid line per operator, pass, element type and backend, and one dashed line per element
 * type and backend for its copy (the median of those copies at each shape: a float16 copy moves
 * half the bytes of a float32 one, so types are never merged). Headless: plain
 * {@link BufferedImage} drawing.
 */
final class BenchPlot {
    private static final int W = 1100;
    private static final int H = 640;
    private static final int LEFT = 80;
    private static final int RIGHT = 300;
    private static final int TOP = 50;
    private static final int BOTTOM = 110;
    private static final Color[] PALETTE = {new Color(0x1f77b4), new Color(0xd62728), new Color(0x2ca02c),
        new Color(0x9467bd), new Color(0xff7f0e), new Color(0x8c564b), new Color(0xe377c2), new Color(0x17becf),
        new Color(0x7f7f7f), new Color(0xbcbd22)};

    private BenchPlot() {
    }

    /**
     * What is drawn.
     *
     * @param shapes the x axis, in the order measured
     * @param series legend label ({@code "layer-norm backward float16 (java)"}) to shape to GB/s
     * @param copies copy group ({@code "float16 (java)"}) to shape to the copies' GB/s
     */
    record Data(List<String> shapes, Map<String, Map<String, Double>> series,
            Map<String, Map<String, List<Double>>> copies) {
    }

    /** Writes the plot of the records with status ok (the caller checks that there is one). */
    static void write(List<Map<String, Object>> records, OutputStream out) throws IOException {
        System.setProperty("java.awt.headless", "true");
        Data data = collect(records);
        BufferedImage img = new BufferedImage(W, H, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
            g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, W, H);
            draw(g, data.shapes(), data.series(), data.copies());
        } finally {
            g.dispose();
        }
        if (!ImageIO.write(img, "png", out)) {
            throw new IOException("no PNG writer in this JVM");
        }
    }

    /** @return the lines to draw from the records with status ok */
    static Data collect(List<Map<String, Object>> records) {
        List<String> shapes = new ArrayList<>();
        Map<String, Map<String, Double>> series = new LinkedHashMap<>();
        Map<String, Map<String, List<Double>>> copies = new LinkedHashMap<>();
        for (Map<String, Object> r : records) {
            if (!"ok".equals(r.get("status"))) {
                continue;
            }
            @SuppressWarnings("unchecked")
            List<Long> dims = (List<Long>) r.get("shape");
            String shape = BenchRunner.shapeLabel(dims.stream().mapToLong(Long::longValue).toArray());
            if (!shapes.contains(shape)) {
                shapes.add(shape);
            }
            String group = r.get("dtype") + " (" + r.get("backend") + ")";
            String label = r.get("op") + (r.get("pass").equals("forward") ? "" : " " + r.get("pass")) + " " + group;
            series.computeIfAbsent(label, k -> new LinkedHashMap<>()).put(shape, (Double) r.get("gbps"));
            copies.computeIfAbsent(group, k -> new LinkedHashMap<>())
                    .computeIfAbsent(shape, k -> new ArrayList<>()).add((Double) r.get("copy_gbps"));
        }
        return new Data(shapes, series, copies);
    }

    private static void draw(Graphics2D g, List<String> shapes, Map<String, Map<String, Double>> series,
            Map<String, Map<String, List<Double>>> copies) {
        int x0 = LEFT;
        int x1 = W - RIGHT;
        int y0 = H - BOTTOM;
        int y1 = TOP;
        double max = 1;
        for (Map<String, Double> s : series.values()) {
            for (double v : s.values()) {
                max = Math.max(max, v);
            }
        }
        for (Map<String, List<Double>> c : copies.values()) {
            for (List<Double> l : c.values()) {
                max = Math.max(max, BenchRunner.median(l.stream().mapToDouble(Double::doubleValue).toArray()));
            }
        }
        double step = niceStep(max * 1.1 / 6);
        double top = Math.ceil(max * 1.1 / step) * step;

        g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 16));
        g.setColor(Color.BLACK);
        g.drawString("NormCL bench: GB/s by shape (solid: operators, dashed: copy of the same bytes)", x0, 30);

        // Grid and y axis.
        g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
        FontMetrics fm = g.getFontMetrics();
        for (double v = 0; v <= top + 1e-9; v += step) {
            int y = yOf(v, top, y0, y1);
            g.setColor(new Color(0xE0E0E0));
            g.drawLine(x0, y, x1, y);
            g.setColor(Color.BLACK);
            String t = formatTick(v, step);
            g.drawString(t, x0 - 8 - fm.stringWidth(t), y + fm.getAscent() / 2 - 1);
        }
        g.drawLine(x0, y0, x1, y0);
        g.drawLine(x0, y0, x0, y1);
        AffineTransform saved = g.getTransform();
        g.rotate(-Math.PI / 2);
        g.drawString("GB/s (bytes read + written, over the median time)", -(y0 + y1) / 2 - 140, 22);
        g.setTransform(saved);

        // X axis: one slot per shape.
        int n = Math.max(1, shapes.size());
        for (int i = 0; i < shapes.size(); i++) {
            int x = xOf(i, n, x0, x1);
            g.drawLine(x, y0, x, y0 + 5);
            String t = shapes.get(i);
            g.drawString(t, x - fm.stringWidth(t) / 2, y0 + 20);
        }
        g.drawString("shape", (x0 + x1) / 2 - fm.stringWidth("shape") / 2, y0 + 45);

        // Series.
        int legendY = TOP + 10;
        int colorIndex = 0;
        Map<String, Color> groupColors = new LinkedHashMap<>(); // a copy line takes its group's first color
        Stroke solid = new BasicStroke(2.2f);
        for (Map.Entry<String, Map<String, Double>> e : series.entrySet()) {
            Color c = PALETTE[colorIndex++ % PALETTE.length];
            for (String group : copies.keySet()) {
                if (e.getKey().endsWith(" " + group)) {
                    groupColors.putIfAbsent(group, c);
                }
            }
            plotLine(g, shapes, e.getValue(), c, solid, top, x0, x1, y0, y1, true);
            legendY = legend(g, e.getKey(), c, solid, x1 + 20, legendY);
        }
        Stroke dashed = new BasicStroke(1.8f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER, 10f, new float[] {7f, 5f},
                0f);
        for (Map.Entry<String, Map<String, List<Double>>> e : copies.entrySet()) {
            Map<String, Double> med = new LinkedHashMap<>();
            e.getValue().forEach((shape, l) -> med.put(shape,
                    BenchRunner.median(l.stream().mapToDouble(Double::doubleValue).toArray())));
            Color c = groupColors.getOrDefault(e.getKey(), Color.GRAY).darker();
            plotLine(g, shapes, med, c, dashed, top, x0, x1, y0, y1, false);
            legendY = legend(g, "copy " + e.getKey(), c, dashed, x1 + 20, legendY);
        }
    }

    private static void plotLine(Graphics2D g, List<String> shapes, Map<String, Double> values, Color c, Stroke s,
            double top, int x0, int x1, int y0, int y1, boolean markers) {
        g.setColor(c);
        g.setStroke(s);
        int n = Math.max(1, shapes.size());
        int px = -1;
        int py = -1;
        for (int i = 0; i < shapes.size(); i++) {
            Double v = values.get(shapes.get(i));
            if (v == null) {
                px = -1;
                continue;
            }
            int x = xOf(i, n, x0, x1);
            int y = yOf(v, top, y0, y1);
            if (px >= 0) {
                g.drawLine(px, py, x, y);
            }
            if (markers) {
                g.fillOval(x - 4, y - 4, 8, 8);
            }
            px = x;
            py = y;
        }
        g.setStroke(new BasicStroke(1f));
    }

    private static int legend(Graphics2D g, String label, Color c, Stroke s, int x, int y) {
        g.setColor(c);
        g.setStroke(s);
        g.drawLine(x, y, x + 30, y);
        g.setStroke(new BasicStroke(1f));
        g.setColor(Color.BLACK);
        g.drawString(label, x + 38, y + 4);
        return y + 20;
    }

    private static int xOf(int i, int n, int x0, int x1) {
        return x0 + (int) Math.round((i + 0.5) * (x1 - x0) / n);
    }

    private static int yOf(double v, double top, int y0, int y1) {
        return y0 - (int) Math.round(v / top * (y0 - y1));
    }

    private static double niceStep(double raw) {
        double p = Math.pow(10, Math.floor(Math.log10(raw)));
        double m = raw / p;
        return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
    }

    private static String formatTick(double v, double step) {
        return step >= 1 ? String.format(Locale.ROOT, "%.0f", v) : String.format(Locale.ROOT, "%.2f", v);
    }
}
