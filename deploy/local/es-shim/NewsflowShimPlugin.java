/*
 * newsflow local-stack shim plugin for Elasticsearch 8.19.x.
 *
 * The only complete Elasticsearch 8 distribution on Maven Central is Elastic's
 * "integ-test-zip": the real server plus the transport-netty4, x-pack-core,
 * x-pack-security and apm modules. It lacks modules that a normal ES install
 * has, two of which our app (and elasticsearch-py) touch:
 *
 *   - rest-root:       GET / and HEAD /  (elasticsearch-py info() / ping())
 *   - analysis-common: the "english" analyzer and common token filters,
 *                      tokenizers and char filters, among them the two that
 *                      the .security system index's mapping uses
 *                      (pattern_capture and unique): without them no API key
 *                      and no native user can be stored
 *
 * This plugin re-provides those under the same names on top of Lucene classes
 * already shipped in the distribution's lib/. The `stack` script compiles it
 * with javac against the distribution's jars and installs it into plugins/.
 * Painless, reindex, mapper-extras (scaled_float, match_only_text, ...),
 * ingest-common, data-streams and ILM are NOT available in this stack.
 */
package newsflow.stack.esshim;

import org.apache.lucene.analysis.CharArraySet;
import org.apache.lucene.analysis.FilteringTokenFilter;
import org.apache.lucene.analysis.LowerCaseFilter;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.charfilter.HTMLStripCharFilter;
import org.apache.lucene.analysis.core.KeywordTokenizer;
import org.apache.lucene.analysis.core.LetterTokenizer;
import org.apache.lucene.analysis.core.UpperCaseFilter;
import org.apache.lucene.analysis.core.WhitespaceTokenizer;
import org.apache.lucene.analysis.email.UAX29URLEmailTokenizer;
import org.apache.lucene.analysis.en.EnglishAnalyzer;
import org.apache.lucene.analysis.en.EnglishMinimalStemFilter;
import org.apache.lucene.analysis.en.EnglishPossessiveFilter;
import org.apache.lucene.analysis.en.KStemFilter;
import org.apache.lucene.analysis.en.PorterStemFilter;
import org.apache.lucene.analysis.miscellaneous.ASCIIFoldingFilter;
import org.apache.lucene.analysis.miscellaneous.LengthFilter;
import org.apache.lucene.analysis.miscellaneous.RemoveDuplicatesTokenFilter;
import org.apache.lucene.analysis.miscellaneous.TrimFilter;
import org.apache.lucene.analysis.miscellaneous.TruncateTokenFilter;
import org.apache.lucene.analysis.ngram.EdgeNGramTokenFilter;
import org.apache.lucene.analysis.ngram.NGramTokenFilter;
import org.apache.lucene.analysis.pattern.PatternCaptureGroupTokenFilter;
import org.apache.lucene.analysis.tokenattributes.CharTermAttribute;
import org.elasticsearch.Build;
import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.cluster.metadata.IndexNameExpressionResolver;
import org.elasticsearch.cluster.node.DiscoveryNodes;
import org.elasticsearch.cluster.service.ClusterService;
import org.elasticsearch.common.bytes.BytesArray;
import org.elasticsearch.common.io.stream.NamedWriteableRegistry;
import org.elasticsearch.common.settings.ClusterSettings;
import org.elasticsearch.common.settings.IndexScopedSettings;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.common.settings.SettingsFilter;
import org.elasticsearch.features.NodeFeature;
import org.elasticsearch.index.analysis.AbstractIndexAnalyzerProvider;
import org.elasticsearch.index.analysis.Analysis;
import org.elasticsearch.index.analysis.AnalyzerProvider;
import org.elasticsearch.index.analysis.CharFilterFactory;
import org.elasticsearch.index.analysis.NormalizingTokenFilterFactory;
import org.elasticsearch.index.analysis.TokenFilterFactory;
import org.elasticsearch.index.analysis.TokenizerFactory;
import org.elasticsearch.indices.analysis.AnalysisModule.AnalysisProvider;
import org.elasticsearch.plugins.ActionPlugin;
import org.elasticsearch.plugins.AnalysisPlugin;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.rest.BaseRestHandler;
import org.elasticsearch.rest.RestController;
import org.elasticsearch.rest.RestHandler;
import org.elasticsearch.rest.RestRequest;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.rest.RestStatus;
import org.elasticsearch.xcontent.XContentBuilder;

import java.io.IOException;
import java.io.Reader;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Function;
import java.util.function.Predicate;
import java.util.function.Supplier;
import java.util.regex.Pattern;

public class NewsflowShimPlugin extends Plugin implements ActionPlugin, AnalysisPlugin {

    private volatile ClusterService clusterService;

    @Override
    public Collection<?> createComponents(PluginServices services) {
        this.clusterService = services.clusterService();
        return List.of();
    }

    // ------------------------------------------------------------------ REST: GET / and HEAD /

    @Override
    public Collection<RestHandler> getRestHandlers(
        Settings settings,
        NamedWriteableRegistry namedWriteableRegistry,
        RestController restController,
        ClusterSettings clusterSettings,
        IndexScopedSettings indexScopedSettings,
        SettingsFilter settingsFilter,
        IndexNameExpressionResolver indexNameExpressionResolver,
        Supplier<DiscoveryNodes> nodesInCluster,
        Predicate<NodeFeature> clusterSupportsFeature
    ) {
        return List.of(new RootHandler());
    }

    private final class RootHandler extends BaseRestHandler {
        @Override
        public String getName() {
            return "newsflow_shim_main_action";
        }

        @Override
        public List<Route> routes() {
            return List.of(new Route(RestRequest.Method.GET, "/"), new Route(RestRequest.Method.HEAD, "/"));
        }

        @Override
        protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) {
            return channel -> {
                if (request.method() == RestRequest.Method.HEAD) {
                    channel.sendResponse(new RestResponse(RestStatus.OK, RestResponse.TEXT_CONTENT_TYPE, BytesArray.EMPTY));
                    return;
                }
                Build build = Build.current();
                ClusterService cs = clusterService;
                XContentBuilder b = channel.newBuilder();
                b.startObject();
                b.field("name", cs.localNode().getName());
                b.field("cluster_name", cs.getClusterName().value());
                b.field("cluster_uuid", cs.state().metadata().clusterUUID());
                b.startObject("version")
                    .field("number", build.qualifiedVersion())
                    .field("build_flavor", build.flavor())
                    .field("build_type", build.type().displayName())
                    .field("build_hash", build.hash())
                    .field("build_date", build.date())
                    .field("build_snapshot", build.isSnapshot())
                    .field("lucene_version", org.apache.lucene.util.Version.LATEST.toString())
                    .field("minimum_wire_compatibility_version", build.minWireCompatVersion())
                    .field("minimum_index_compatibility_version", build.minIndexCompatVersion())
                    .endObject();
                b.field("tagline", "You Know, for Search");
                b.endObject();
                channel.sendResponse(new RestResponse(RestStatus.OK, b));
            };
        }
    }

    // ------------------------------------------------------------------ analysis

    @Override
    public Map<String, AnalysisProvider<AnalyzerProvider<? extends org.apache.lucene.analysis.Analyzer>>> getAnalyzers() {
        return Map.of("english", (indexSettings, env, name, settings) -> new AbstractIndexAnalyzerProvider<EnglishAnalyzer>(name, settings) {
            private final EnglishAnalyzer analyzer = new EnglishAnalyzer(
                Analysis.parseStopWords(env, settings, EnglishAnalyzer.getDefaultStopSet()),
                Analysis.parseStemExclusion(settings, CharArraySet.EMPTY_SET)
            );

            @Override
            public EnglishAnalyzer get() {
                return analyzer;
            }
        });
    }

    @Override
    public Map<String, AnalysisProvider<TokenFilterFactory>> getTokenFilters() {
        return Map.ofEntries(
            Map.entry("lowercase", (i, e, name, s) -> normalizing(name, LowerCaseFilter::new)),
            Map.entry("uppercase", (i, e, name, s) -> normalizing(name, UpperCaseFilter::new)),
            Map.entry("asciifolding", (i, e, name, s) -> {
                boolean preserve = s.getAsBoolean("preserve_original", false);
                return normalizing(name, ts -> new ASCIIFoldingFilter(ts, preserve));
            }),
            Map.entry("trim", (i, e, name, s) -> normalizing(name, TrimFilter::new)),
            Map.entry("porter_stem", (i, e, name, s) -> filter(name, PorterStemFilter::new)),
            Map.entry("kstem", (i, e, name, s) -> filter(name, KStemFilter::new)),
            Map.entry("stemmer", (i, e, name, s) -> {
                String lang = s.get("language", s.get("name", "english")).toLowerCase(Locale.ROOT);
                Function<TokenStream, TokenStream> f = switch (lang) {
                    case "english", "porter" -> PorterStemFilter::new;
                    case "light_english", "kstem" -> KStemFilter::new;
                    case "minimal_english" -> EnglishMinimalStemFilter::new;
                    case "possessive_english" -> EnglishPossessiveFilter::new;
                    default -> throw new IllegalArgumentException(
                        "newsflow local stack: stemmer language [" + lang + "] not available (english variants only)"
                    );
                };
                return filter(name, f);
            }),
            Map.entry("length", (i, e, name, s) -> {
                int min = s.getAsInt("min", 0);
                int max = s.getAsInt("max", Integer.MAX_VALUE);
                return filter(name, ts -> new LengthFilter(ts, min, max));
            }),
            Map.entry("truncate", (i, e, name, s) -> {
                int len = s.getAsInt("length", 10);
                return filter(name, ts -> new TruncateTokenFilter(ts, len));
            }),
            Map.entry("edge_ngram", (i, e, name, s) -> {
                int min = s.getAsInt("min_gram", 1);
                int max = s.getAsInt("max_gram", 2);
                boolean keep = s.getAsBoolean("preserve_original", false);
                return filter(name, ts -> new EdgeNGramTokenFilter(ts, min, max, keep));
            }),
            Map.entry("ngram", (i, e, name, s) -> {
                int min = s.getAsInt("min_gram", 1);
                int max = s.getAsInt("max_gram", 2);
                boolean keep = s.getAsBoolean("preserve_original", false);
                return filter(name, ts -> new NGramTokenFilter(ts, min, max, keep));
            }),
            // The .security index's "email" analyzer: uax_url_email, then pattern_capture
            // (the whole address, its local part, its words, numbers and domain), lowercase
            // and unique.
            // Only usable with settings of its own (no default instance without patterns).
            Map.entry("pattern_capture", AnalysisPlugin.requiresAnalysisSettings((i, e, name, s) -> {
                List<String> regexes = s.getAsList("patterns");
                if (regexes.isEmpty()) {
                    throw new IllegalArgumentException("pattern_capture [" + name + "] needs [patterns]");
                }
                Pattern[] patterns = regexes.stream().map(Pattern::compile).toArray(Pattern[]::new);
                boolean preserve = s.getAsBoolean("preserve_original", true);
                return filter(name, ts -> new PatternCaptureGroupTokenFilter(ts, preserve, patterns));
            })),
            Map.entry("unique", (i, e, name, s) -> {
                boolean samePosition = s.getAsBoolean("only_on_same_position", false);
                return filter(name, ts -> samePosition ? new RemoveDuplicatesTokenFilter(ts) : new UniqueTermsFilter(ts));
            })
        );
    }

    /** Keeps the first token of each term in the whole stream (Lucene only has the per-position variant). */
    private static final class UniqueTermsFilter extends FilteringTokenFilter {
        private final CharTermAttribute term = addAttribute(CharTermAttribute.class);
        private final CharArraySet seen = new CharArraySet(8, false);

        UniqueTermsFilter(TokenStream in) {
            super(in);
        }

        @Override
        protected boolean accept() {
            if (seen.contains(term.buffer(), 0, term.length())) {
                return false;
            }
            seen.add(term.toString());
            return true;
        }

        @Override
        public void reset() throws IOException {
            super.reset();
            seen.clear();
        }
    }

    @Override
    public Map<String, AnalysisProvider<TokenizerFactory>> getTokenizers() {
        return Map.of(
            "whitespace", (i, e, name, s) -> TokenizerFactory.newFactory(name, WhitespaceTokenizer::new),
            "keyword", (i, e, name, s) -> TokenizerFactory.newFactory(name, KeywordTokenizer::new),
            "letter", (i, e, name, s) -> TokenizerFactory.newFactory(name, LetterTokenizer::new),
            "uax_url_email", (i, e, name, s) -> TokenizerFactory.newFactory(name, UAX29URLEmailTokenizer::new)
        );
    }

    @Override
    public Map<String, AnalysisProvider<CharFilterFactory>> getCharFilters() {
        return Map.of("html_strip", (i, e, name, s) -> new CharFilterFactory() {
            @Override
            public String name() {
                return name;
            }

            @Override
            public Reader create(Reader reader) {
                return new HTMLStripCharFilter(reader);
            }
        });
    }

    private static TokenFilterFactory filter(String name, Function<TokenStream, TokenStream> f) {
        return new TokenFilterFactory() {
            @Override
            public String name() {
                return name;
            }

            @Override
            public TokenStream create(TokenStream ts) {
                return f.apply(ts);
            }
        };
    }

    /** Usable in keyword normalizers too. */
    private static TokenFilterFactory normalizing(String name, Function<TokenStream, TokenStream> f) {
        return new NormalizingTokenFilterFactory() {
            @Override
            public String name() {
                return name;
            }

            @Override
            public TokenStream create(TokenStream ts) {
                return f.apply(ts);
            }
        };
    }
}
