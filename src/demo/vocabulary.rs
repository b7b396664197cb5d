//! The weighted vocabularies the generator draws from: countries with their cities,
//! names by language, marketing sources, devices, campaigns, products and content.

pub(super) struct City {
    pub(super) name: &'static str,
    pub(super) region: &'static str,
    pub(super) timezone: &'static str,
    /// Standard-time offset from UTC, for the local daily cycle (daylight saving ignored).
    pub(super) utc_offset_hours: i8,
    pub(super) weight: u32,
}

pub(super) struct Names {
    pub(super) female: &'static [&'static str],
    pub(super) male: &'static [&'static str],
    pub(super) last: &'static [&'static str],
}

pub(super) struct Country {
    pub(super) code: &'static str,
    pub(super) weight: u32,
    pub(super) calling_code: &'static str,
    pub(super) currency: &'static str,
    pub(super) email_domains: &'static [&'static str],
    pub(super) names: &'static Names,
    pub(super) cities: &'static [City],
}

const fn city(
    name: &'static str,
    region: &'static str,
    timezone: &'static str,
    utc_offset_hours: i8,
    weight: u32,
) -> City {
    City {
        name,
        region,
        timezone,
        utc_offset_hours,
        weight,
    }
}

const GERMAN: Names = Names {
    female: &[
        "Anna",
        "Lena",
        "Laura",
        "Julia",
        "Sarah",
        "Lisa",
        "Katharina",
        "Sophie",
        "Marie",
        "Hannah",
        "Jana",
        "Sabine",
    ],
    male: &[
        "Lukas",
        "Felix",
        "Jonas",
        "Maximilian",
        "Paul",
        "Leon",
        "Tobias",
        "Jan",
        "Michael",
        "Thomas",
        "Stefan",
        "Jürgen",
    ],
    last: &[
        "Müller",
        "Schmidt",
        "Schneider",
        "Fischer",
        "Weber",
        "Meyer",
        "Wagner",
        "Becker",
        "Schulz",
        "Hoffmann",
        "Koch",
        "Richter",
        "Wolf",
        "Schröder",
        "Neumann",
    ],
};
const ENGLISH: Names = Names {
    female: &[
        "Emily", "Olivia", "Emma", "Sophia", "Jessica", "Ashley", "Sarah", "Hannah", "Grace",
        "Chloe", "Megan", "Madison",
    ],
    male: &[
        "James", "John", "Michael", "William", "David", "Daniel", "Matthew", "Oliver", "Jack",
        "Harry", "Ryan", "Ethan",
    ],
    last: &[
        "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Taylor",
        "Anderson", "Thomas", "Jackson", "White", "Harris", "Martin", "Garcia", "Evans",
    ],
};
const FRENCH: Names = Names {
    female: &[
        "Camille", "Léa", "Manon", "Chloé", "Inès", "Emma", "Jade", "Louise", "Sarah", "Juliette",
    ],
    male: &[
        "Lucas", "Hugo", "Louis", "Gabriel", "Arthur", "Jules", "Théo", "Nathan", "Mathis",
        "Antoine",
    ],
    last: &[
        "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
        "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garnier",
    ],
};
const SPANISH: Names = Names {
    female: &[
        "Lucía", "María", "Paula", "Sofía", "Carmen", "Laura", "Marta", "Elena", "Ana", "Isabel",
    ],
    male: &[
        "Hugo",
        "Daniel",
        "Pablo",
        "Alejandro",
        "Javier",
        "Carlos",
        "David",
        "Sergio",
        "Manuel",
        "Álvaro",
    ],
    last: &[
        "García",
        "Fernández",
        "González",
        "Rodríguez",
        "López",
        "Martínez",
        "Sánchez",
        "Pérez",
        "Gómez",
        "Martín",
        "Jiménez",
        "Ruiz",
    ],
};
const ITALIAN: Names = Names {
    female: &[
        "Giulia",
        "Sofia",
        "Aurora",
        "Alice",
        "Chiara",
        "Francesca",
        "Martina",
        "Sara",
        "Elena",
        "Valentina",
    ],
    male: &[
        "Leonardo",
        "Francesco",
        "Alessandro",
        "Lorenzo",
        "Matteo",
        "Andrea",
        "Marco",
        "Luca",
        "Giuseppe",
        "Davide",
    ],
    last: &[
        "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino",
        "Greco", "Bruno", "Gallo",
    ],
};
const DUTCH: Names = Names {
    female: &[
        "Emma", "Julia", "Sophie", "Anna", "Lisa", "Eva", "Sanne", "Fleur", "Noa", "Femke",
    ],
    male: &[
        "Daan", "Sem", "Lucas", "Levi", "Thijs", "Bram", "Jesse", "Ruben", "Lars", "Niels",
    ],
    last: &[
        "de Jong",
        "Jansen",
        "de Vries",
        "van den Berg",
        "van Dijk",
        "Bakker",
        "Janssen",
        "Visser",
        "Smit",
        "Meijer",
        "de Boer",
        "Mulder",
    ],
};
const POLISH: Names = Names {
    female: &[
        "Anna",
        "Maria",
        "Katarzyna",
        "Małgorzata",
        "Agnieszka",
        "Zofia",
        "Julia",
        "Magdalena",
        "Natalia",
        "Aleksandra",
    ],
    male: &[
        "Piotr",
        "Krzysztof",
        "Tomasz",
        "Paweł",
        "Jakub",
        "Michał",
        "Kamil",
        "Marcin",
        "Łukasz",
        "Adam",
    ],
    last: &[
        "Nowak",
        "Wójcik",
        "Kowalczyk",
        "Woźniak",
        "Mazur",
        "Krawczyk",
        "Kaczmarek",
        "Zając",
        "Król",
        "Wieczorek",
    ],
};
const SWEDISH: Names = Names {
    female: &[
        "Alice", "Maja", "Elsa", "Astrid", "Wilma", "Ebba", "Saga", "Linnéa", "Klara", "Ingrid",
    ],
    male: &[
        "William", "Liam", "Noah", "Hugo", "Oscar", "Erik", "Lucas", "Axel", "Nils", "Anders",
    ],
    last: &[
        "Andersson",
        "Johansson",
        "Karlsson",
        "Nilsson",
        "Eriksson",
        "Larsson",
        "Olsson",
        "Persson",
        "Svensson",
        "Gustafsson",
        "Lindberg",
        "Lindqvist",
    ],
};

const BERLIN_TZ: &str = "Europe/Berlin";
const NEW_YORK_TZ: &str = "America/New_York";
const CHICAGO_TZ: &str = "America/Chicago";
const DENVER_TZ: &str = "America/Denver";
const LOS_ANGELES_TZ: &str = "America/Los_Angeles";

pub(super) static COUNTRIES: &[Country] = &[
    Country {
        code: "DE",
        weight: 28,
        calling_code: "49",
        currency: "EUR",
        email_domains: &["web.de", "gmx.de", "t-online.de"],
        names: &GERMAN,
        cities: &[
            city("Berlin", "Berlin", BERLIN_TZ, 1, 22),
            city("Hamburg", "Hamburg", BERLIN_TZ, 1, 12),
            city("München", "Bayern", BERLIN_TZ, 1, 11),
            city("Köln", "Nordrhein-Westfalen", BERLIN_TZ, 1, 8),
            city("Frankfurt am Main", "Hessen", BERLIN_TZ, 1, 7),
            city("Stuttgart", "Baden-Württemberg", BERLIN_TZ, 1, 6),
            city("Düsseldorf", "Nordrhein-Westfalen", BERLIN_TZ, 1, 5),
            city("Leipzig", "Sachsen", BERLIN_TZ, 1, 5),
            city("Dresden", "Sachsen", BERLIN_TZ, 1, 4),
            city("Hannover", "Niedersachsen", BERLIN_TZ, 1, 4),
            city("Nürnberg", "Bayern", BERLIN_TZ, 1, 4),
        ],
    },
    Country {
        code: "US",
        weight: 20,
        calling_code: "1",
        currency: "USD",
        email_domains: &["aol.com", "hotmail.com", "comcast.net"],
        names: &ENGLISH,
        cities: &[
            city("New York", "New York", NEW_YORK_TZ, -5, 20),
            city("Los Angeles", "California", LOS_ANGELES_TZ, -8, 14),
            city("Chicago", "Illinois", CHICAGO_TZ, -6, 10),
            city("Houston", "Texas", CHICAGO_TZ, -6, 8),
            city("Phoenix", "Arizona", "America/Phoenix", -7, 6),
            city("Philadelphia", "Pennsylvania", NEW_YORK_TZ, -5, 6),
            city("San Francisco", "California", LOS_ANGELES_TZ, -8, 6),
            city("Seattle", "Washington", LOS_ANGELES_TZ, -8, 5),
            city("Denver", "Colorado", DENVER_TZ, -7, 5),
            city("Miami", "Florida", NEW_YORK_TZ, -5, 6),
            city("Boston", "Massachusetts", NEW_YORK_TZ, -5, 5),
            city("Atlanta", "Georgia", NEW_YORK_TZ, -5, 5),
        ],
    },
    Country {
        code: "FR",
        weight: 11,
        calling_code: "33",
        currency: "EUR",
        email_domains: &["orange.fr", "free.fr", "laposte.net"],
        names: &FRENCH,
        cities: &[
            city("Paris", "Île-de-France", "Europe/Paris", 1, 30),
            city(
                "Marseille",
                "Provence-Alpes-Côte d'Azur",
                "Europe/Paris",
                1,
                10,
            ),
            city("Lyon", "Auvergne-Rhône-Alpes", "Europe/Paris", 1, 10),
            city("Toulouse", "Occitanie", "Europe/Paris", 1, 8),
            city("Nice", "Provence-Alpes-Côte d'Azur", "Europe/Paris", 1, 6),
            city("Nantes", "Pays de la Loire", "Europe/Paris", 1, 6),
            city("Strasbourg", "Grand Est", "Europe/Paris", 1, 5),
            city("Bordeaux", "Nouvelle-Aquitaine", "Europe/Paris", 1, 6),
            city("Lille", "Hauts-de-France", "Europe/Paris", 1, 6),
        ],
    },
    Country {
        code: "GB",
        weight: 10,
        calling_code: "44",
        currency: "GBP",
        email_domains: &["btinternet.com", "hotmail.co.uk", "sky.com"],
        names: &ENGLISH,
        cities: &[
            city("London", "England", "Europe/London", 0, 35),
            city("Manchester", "England", "Europe/London", 0, 10),
            city("Birmingham", "England", "Europe/London", 0, 10),
            city("Glasgow", "Scotland", "Europe/London", 0, 7),
            city("Edinburgh", "Scotland", "Europe/London", 0, 6),
            city("Leeds", "England", "Europe/London", 0, 6),
            city("Bristol", "England", "Europe/London", 0, 5),
            city("Liverpool", "England", "Europe/London", 0, 5),
            city("Cardiff", "Wales", "Europe/London", 0, 4),
            city("Belfast", "Northern Ireland", "Europe/London", 0, 3),
        ],
    },
    Country {
        code: "ES",
        weight: 6,
        calling_code: "34",
        currency: "EUR",
        email_domains: &["hotmail.es", "telefonica.net"],
        names: &SPANISH,
        cities: &[
            city("Madrid", "Comunidad de Madrid", "Europe/Madrid", 1, 30),
            city("Barcelona", "Cataluña", "Europe/Madrid", 1, 25),
            city("Valencia", "Comunidad Valenciana", "Europe/Madrid", 1, 12),
            city("Sevilla", "Andalucía", "Europe/Madrid", 1, 10),
            city("Málaga", "Andalucía", "Europe/Madrid", 1, 8),
            city("Bilbao", "País Vasco", "Europe/Madrid", 1, 6),
            city(
                "Las Palmas de Gran Canaria",
                "Canarias",
                "Atlantic/Canary",
                0,
                5,
            ),
        ],
    },
    Country {
        code: "IT",
        weight: 6,
        calling_code: "39",
        currency: "EUR",
        email_domains: &["libero.it", "virgilio.it", "tiscali.it"],
        names: &ITALIAN,
        cities: &[
            city("Roma", "Lazio", "Europe/Rome", 1, 25),
            city("Milano", "Lombardia", "Europe/Rome", 1, 25),
            city("Napoli", "Campania", "Europe/Rome", 1, 12),
            city("Torino", "Piemonte", "Europe/Rome", 1, 10),
            city("Bologna", "Emilia-Romagna", "Europe/Rome", 1, 8),
            city("Firenze", "Toscana", "Europe/Rome", 1, 8),
            city("Palermo", "Sicilia", "Europe/Rome", 1, 6),
        ],
    },
    Country {
        code: "NL",
        weight: 5,
        calling_code: "31",
        currency: "EUR",
        email_domains: &["ziggo.nl", "kpnmail.nl"],
        names: &DUTCH,
        cities: &[
            city("Amsterdam", "Noord-Holland", "Europe/Amsterdam", 1, 30),
            city("Rotterdam", "Zuid-Holland", "Europe/Amsterdam", 1, 20),
            city("Den Haag", "Zuid-Holland", "Europe/Amsterdam", 1, 15),
            city("Utrecht", "Utrecht", "Europe/Amsterdam", 1, 15),
            city("Eindhoven", "Noord-Brabant", "Europe/Amsterdam", 1, 10),
            city("Groningen", "Groningen", "Europe/Amsterdam", 1, 6),
        ],
    },
    Country {
        code: "PL",
        weight: 4,
        calling_code: "48",
        currency: "PLN",
        email_domains: &["wp.pl", "onet.pl", "o2.pl"],
        names: &POLISH,
        cities: &[
            city("Warszawa", "Mazowieckie", "Europe/Warsaw", 1, 30),
            city("Kraków", "Małopolskie", "Europe/Warsaw", 1, 18),
            city("Wrocław", "Dolnośląskie", "Europe/Warsaw", 1, 14),
            city("Łódź", "Łódzkie", "Europe/Warsaw", 1, 12),
            city("Poznań", "Wielkopolskie", "Europe/Warsaw", 1, 12),
            city("Gdańsk", "Pomorskie", "Europe/Warsaw", 1, 10),
        ],
    },
    Country {
        code: "AT",
        weight: 4,
        calling_code: "43",
        currency: "EUR",
        email_domains: &["gmx.at", "aon.at"],
        names: &GERMAN,
        cities: &[
            city("Wien", "Wien", "Europe/Vienna", 1, 45),
            city("Graz", "Steiermark", "Europe/Vienna", 1, 15),
            city("Linz", "Oberösterreich", "Europe/Vienna", 1, 12),
            city("Salzburg", "Salzburg", "Europe/Vienna", 1, 12),
            city("Innsbruck", "Tirol", "Europe/Vienna", 1, 10),
        ],
    },
    Country {
        code: "CH",
        weight: 3,
        calling_code: "41",
        currency: "CHF",
        email_domains: &["bluewin.ch", "gmx.ch"],
        names: &GERMAN,
        cities: &[
            city("Zürich", "Zürich", "Europe/Zurich", 1, 30),
            city("Genève", "Genève", "Europe/Zurich", 1, 20),
            city("Basel", "Basel-Stadt", "Europe/Zurich", 1, 15),
            city("Bern", "Bern", "Europe/Zurich", 1, 15),
            city("Lausanne", "Vaud", "Europe/Zurich", 1, 12),
        ],
    },
    Country {
        code: "SE",
        weight: 3,
        calling_code: "46",
        currency: "SEK",
        email_domains: &["telia.com", "hotmail.se"],
        names: &SWEDISH,
        cities: &[
            city("Stockholm", "Stockholm", "Europe/Stockholm", 1, 45),
            city("Göteborg", "Västra Götaland", "Europe/Stockholm", 1, 25),
            city("Malmö", "Skåne", "Europe/Stockholm", 1, 18),
            city("Uppsala", "Uppsala", "Europe/Stockholm", 1, 12),
        ],
    },
];

pub(super) const GENDERS: &[(&str, u32)] = &[("female", 49), ("male", 48), ("other", 3)];

/// (lowest age, highest age, weight).
pub(super) const AGE_BRACKETS: &[(u32, u32, u32)] = &[
    (18, 24, 14),
    (25, 34, 24),
    (35, 44, 22),
    (45, 54, 18),
    (55, 64, 13),
    (65, 80, 9),
];

/// Global statuses and their shares in percent.
pub const STATUS_WEIGHTS: &[(&str, u32)] = &[
    ("subscribed", 72),
    ("unsubscribed", 12),
    ("unconfirmed", 6),
    ("hard_bounced", 4),
    ("invalid", 3),
    ("complainer", 2),
    ("suspended", 1),
];
pub(super) const STATUSES: &[(&str, u32)] = STATUS_WEIGHTS;

type UtmSource = (&'static str, &'static str, &'static [&'static str], u32);
/// (utm_source, utm_medium, campaigns, weight).
pub(super) const UTM_SOURCES: &[UtmSource] = &[
    (
        "google",
        "cpc",
        &["brand_search", "generic_search", "shopping"],
        25,
    ),
    ("google", "organic", &["seo"], 15),
    (
        "facebook",
        "paid_social",
        &[
            "spring_sale",
            "summer_launch",
            "black_friday",
            "retargeting",
        ],
        14,
    ),
    (
        "instagram",
        "paid_social",
        &[
            "spring_sale",
            "summer_launch",
            "black_friday",
            "influencer_collab",
        ],
        12,
    ),
    (
        "newsletter",
        "email",
        &["welcome_series", "weekly_digest", "winback"],
        10,
    ),
    (
        "tiktok",
        "paid_social",
        &["summer_launch", "influencer_collab"],
        7,
    ),
    ("bing", "cpc", &["brand_search", "generic_search"], 4),
    ("partner", "affiliate", &["partner_program"], 6),
    ("referral", "referral", &["refer_a_friend"], 7),
];

pub(super) struct Platform {
    pub(super) name: &'static str,
    pub(super) weight: u32,
    pub(super) browsers: &'static [(&'static str, u32)],
}

pub(super) struct Device {
    pub(super) name: &'static str,
    pub(super) weight: u32,
    pub(super) push_probability: f64,
    pub(super) platforms: &'static [Platform],
}

const MOBILE_IOS: Platform = Platform {
    name: "ios",
    weight: 45,
    browsers: &[("safari", 80), ("chrome", 20)],
};
const MOBILE_ANDROID: Platform = Platform {
    name: "android",
    weight: 55,
    browsers: &[("chrome", 75), ("samsung_internet", 15), ("firefox", 10)],
};

pub(super) const DEVICES: &[Device] = &[
    Device {
        name: "mobile",
        weight: 55,
        push_probability: 0.55,
        platforms: &[MOBILE_IOS, MOBILE_ANDROID],
    },
    Device {
        name: "desktop",
        weight: 36,
        push_probability: 0.08,
        platforms: &[
            Platform {
                name: "windows",
                weight: 65,
                browsers: &[("chrome", 65), ("edge", 22), ("firefox", 13)],
            },
            Platform {
                name: "macos",
                weight: 30,
                browsers: &[("safari", 50), ("chrome", 45), ("firefox", 5)],
            },
            Platform {
                name: "linux",
                weight: 5,
                browsers: &[("firefox", 55), ("chrome", 45)],
            },
        ],
    },
    Device {
        name: "tablet",
        weight: 9,
        push_probability: 0.35,
        platforms: &[
            Platform {
                name: "ios",
                weight: 65,
                browsers: &[("safari", 85), ("chrome", 15)],
            },
            Platform {
                name: "android",
                weight: 35,
                browsers: &[("chrome", 85), ("samsung_internet", 15)],
            },
        ],
    },
];

/// The tag vocabulary and relative weights.
pub const TAGS: &[(&str, u32)] = &[
    ("newsletter", 30),
    ("loyalty", 18),
    ("churn_risk", 8),
    ("student", 8),
    ("beta", 8),
    ("vip", 6),
    ("early_adopter", 6),
    ("gift_buyer", 6),
    ("wholesale", 4),
    ("b2b", 4),
    ("influencer", 2),
];

/// Local hour of day and its relative activity.
pub(super) const HOURLY_WEIGHTS: [(i64, u32); 24] = [
    (0, 10),
    (1, 6),
    (2, 4),
    (3, 3),
    (4, 3),
    (5, 6),
    (6, 15),
    (7, 35),
    (8, 55),
    (9, 65),
    (10, 70),
    (11, 70),
    (12, 80),
    (13, 70),
    (14, 60),
    (15, 60),
    (16, 62),
    (17, 70),
    (18, 80),
    (19, 90),
    (20, 100),
    (21, 90),
    (22, 60),
    (23, 30),
];

pub(super) const EMAIL_CAMPAIGNS: &[&str] = &[
    "weekly_digest",
    "spring_sale",
    "summer_launch",
    "black_friday",
    "abandoned_cart",
    "welcome_series",
    "winback",
    "product_recommendations",
];
pub(super) const SMS_CAMPAIGNS: &[&str] = &[
    "flash_sale",
    "order_shipped",
    "appointment_reminder",
    "black_friday",
];
pub(super) const PUSH_CAMPAIGNS: &[&str] = &[
    "price_drop",
    "back_in_stock",
    "daily_deal",
    "abandoned_cart",
];
pub(super) const APP_VERSIONS: &[&str] = &["4.12.0", "4.12.1", "4.13.0", "4.14.2"];
pub(super) const PROMO_CODES: &[(&str, u32)] = &[
    ("WELCOME10", 10),
    ("SUMMER20", 20),
    ("BLACKFRIDAY30", 30),
    ("VIP15", 15),
    ("FREESHIP", 0),
];
pub(super) const FORMS: &[(&str, u32)] = &[
    ("newsletter_signup", 40),
    ("contact", 20),
    ("survey", 25),
    ("back_in_stock", 15),
];
pub(super) const CATEGORIES: &[&str] = &[
    "shoes",
    "dresses",
    "outdoor",
    "electronics",
    "home",
    "beauty",
    "sale",
];
pub(super) const BLOG_POSTS: &[&str] = &[
    "summer-lookbook",
    "care-guide",
    "gift-ideas",
    "behind-the-scenes",
];
