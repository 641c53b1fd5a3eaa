using System.Text;

namespace MicroLm.Train;

/// <summary>Procedural children's stories: a hero (child or animal, with a name, pronouns and a
/// feeling), a place, objects and a friend, told through one of several plots with dialogue. The
/// seed fixes the text. Sentences agree in person, number and article (a/an), so a model must learn
/// the grammar, not a handful of fixed strings.</summary>
internal sealed class StoryCorpus
{
    private sealed record Character(string Name, string Kind, bool Girl)
    {
        public string He => Girl ? "she" : "he";
        public string His => Girl ? "her" : "his";
        public string Him => Girl ? "her" : "him";
    }

    private static readonly string[] GirlNames = ["Lily", "Mia", "Sue", "Anna", "Lucy", "Emma", "Zoe", "Ella", "Rosa", "Kate", "Amy", "Nora", "Ivy", "Jane", "Molly", "Daisy", "Ruby", "Sara"];
    private static readonly string[] BoyNames = ["Tom", "Ben", "Max", "Sam", "Leo", "Jack", "Tim", "Finn", "Owen", "Jake", "Oscar", "Eli", "Noah", "Bob", "Leo", "Dan", "Luke", "Theo"];
    private static readonly string[] Kinds = ["girl", "boy", "bunny", "cat", "dog", "bear", "fox", "duck", "mouse", "frog", "bird", "owl", "puppy", "kitten", "lion", "pig"];
    private static readonly string[] Sizes = ["little", "small", "big", "tiny", "young", "happy", "kind", "brave", "shy", "curious", "silly", "sleepy"];
    private static readonly (string Name, string In)[] Places =
    [
        ("the park", "in"), ("the forest", "in"), ("a small house", "in"), ("the garden", "in"), ("the beach", "at"),
        ("a big farm", "on"), ("the village", "in"), ("the woods", "in"), ("a tall tree", "in"), ("the town", "in"),
        ("the meadow", "in"), ("a little boat", "on"), ("the hill", "on"), ("the school", "at"), ("the pond", "by"),
    ];
    private static readonly string[] Objects = ["ball", "kite", "hat", "toy car", "red box", "book", "drum", "doll", "shell", "key", "cup", "apple", "flower", "stick", "blanket", "map", "bell", "feather", "rock", "balloon", "umbrella", "cake", "egg", "ring", "boat", "jar of honey"];
    private static readonly string[] Colours = ["red", "blue", "green", "yellow", "pink", "shiny", "old", "soft", "round", "purple", "orange", "white", "tiny", "big"];
    private static readonly string[] Activities = ["play outside", "run and jump", "sing songs", "draw pictures", "read books", "dance", "climb trees", "swim in the pond", "look at the stars", "bake cookies", "play with " + "friends", "pick flowers", "build towers", "splash in puddles"];
    private static readonly string[] Hiding = ["under the bed", "behind a tree", "in the grass", "near the river", "under a big rock", "in the sand", "on the roof", "inside an old box", "next to the door", "in the mud"];
    private static readonly string[] GoodFeelings = ["happy", "glad", "proud", "excited", "thankful", "calm"];
    private static readonly string[] BadFeelings = ["sad", "scared", "worried", "angry", "lonely", "upset"];
    private static readonly string[] Weather = ["The sun was shining.", "It was a windy day.", "It was raining outside.", "The sky was blue and clear.", "It was a cold morning.", "Snow was falling softly."];
    private static readonly string[] Family = ["mom", "dad", "grandma", "grandpa", "big sister", "big brother"];
    private static readonly string[] Endings =
    [
        "From that day on, {0} and {1} were best friends.", "{0} learned that sharing makes everyone happy.",
        "That night, {0} went to bed with a big smile.", "{0} knew that being brave was a good thing.",
        "And they all lived happily ever after.", "{0} never forgot that special day.",
        "The end.", "{0} learned to always be kind to others.",
    ];

    private readonly SplitMix _rng;
    private readonly StringBuilder _sb = new();

    public StoryCorpus(ulong seed) => _rng = new SplitMix(seed);

    /// <summary>Stories until the text reaches <paramref name="bytes"/> characters, one per line.</summary>
    public static List<string> Generate(ulong seed, int bytes)
    {
        var corpus = new StoryCorpus(seed);
        var stories = new List<string>();
        long total = 0;
        while (total < bytes)
        {
            string s = corpus.Story();
            stories.Add(s);
            total += s.Length + 1;
        }
        return stories;
    }

    private T Pick<T>(IReadOnlyList<T> items) => _rng.Pick(items);

    private static string A(string noun) => ("aeiou".Contains(noun[0]) ? "an " : "a ") + noun;

    private static string Cap(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..];

    private Character NewCharacter(string? avoid = null)
    {
        string kind = Pick(Kinds);
        bool girl = kind == "girl" || kind != "boy" && _rng.Chance(50);
        string name;
        do name = Pick(girl ? GirlNames : BoyNames); while (name == avoid);
        return new Character(name, kind, girl);
    }

    private void Say(string text) { if (_sb.Length > 0) _sb.Append(' '); _sb.Append(text); }

    private void Quote(Character who, string line, string verb = "said")
    {
        switch (_rng.Below(3))
        {
            case 0: Say($"\"{line}\" {verb} {who.Name}."); break;
            case 1: Say($"{who.Name} {verb}, \"{line}\""); break;
            default: Say($"\"{line}\" {who.He} {verb}."); break;
        }
    }

    public string Story()
    {
        _sb.Clear();
        var hero = NewCharacter();
        var friend = NewCharacter(hero.Name);
        var place = Pick(Places);
        string thing = Pick(Objects), colour = Pick(Colours);

        switch (_rng.Below(4))
        {
            case 0: Say($"Once upon a time, there was {A(Pick(Sizes))} {hero.Kind} named {hero.Name}."); break;
            case 1: Say($"Once upon a time, {A(Pick(Sizes))} {hero.Kind} named {hero.Name} lived {place.In} {place.Name}."); break;
            case 2: Say($"One day, {A(Pick(Sizes))} {hero.Kind} called {hero.Name} went to {place.Name}."); break;
            default: Say($"There once was {A(hero.Kind)} named {hero.Name} who lived {place.In} {place.Name}."); break;
        }
        if (_rng.Chance(60)) Say($"{Cap(hero.He)} loved to {Pick(Activities)}.");
        if (_rng.Chance(40)) Say(Pick(Weather));

        switch (_rng.Below(6))
        {
            case 0: LostThing(hero, friend, thing, colour); break;
            case 1: NewFriend(hero, friend, place); break;
            case 2: Fear(hero, friend, place); break;
            case 3: Sharing(hero, friend, thing, colour); break;
            case 4: Helping(hero, friend, place); break;
            default: Trip(hero, friend, place, thing); break;
        }
        Say(string.Format(Pick(Endings), hero.Name, friend.Name));
        return _sb.ToString();
    }

    private void LostThing(Character hero, Character friend, string thing, string colour)
    {
        Say($"{hero.Name} had {A(colour)} {thing}. {Cap(hero.He)} loved {hero.His} {thing} very much.");
        Say($"One day, {hero.Name} could not find {hero.His} {thing}. {Cap(hero.He)} felt {Pick(BadFeelings)}.");
        Quote(hero, $"Where is my {thing}?", "asked");
        Say($"{hero.Name} looked {Pick(Hiding)}, but it was not there.");
        Say($"Then {hero.His} friend {friend.Name} the {friend.Kind} came to help.");
        Quote(friend, _rng.Chance(50) ? "Do not worry, I will help you look." : "Let us look together!");
        string spot = Pick(Hiding);
        Say($"They looked and looked. At last, {friend.Name} found the {thing} {spot}.");
        Quote(hero, _rng.Chance(50) ? "Thank you, " + friend.Name + "!" : "You found it! Thank you so much!");
        Say($"{hero.Name} was very {Pick(GoodFeelings)}.");
    }

    private void NewFriend(Character hero, Character friend, (string Name, string In) place)
    {
        Say($"{hero.Name} did not have any friends {place.In} {place.Name}. {Cap(hero.He)} felt {Pick(BadFeelings)}.");
        Say($"One day, {hero.He} saw {A(friend.Kind)} sitting alone. The {friend.Kind} looked {Pick(BadFeelings)} too.");
        Quote(hero, "Hello, my name is " + hero.Name + ". What is your name?", "asked");
        Quote(friend, "My name is " + friend.Name + ". Do you want to play with me?");
        Quote(hero, _rng.Chance(50) ? "Yes, I would love to!" : "Yes! Let us play together!");
        Say($"{hero.Name} and {friend.Name} played all day. They {Pick(new[] { "ran in the grass", "sang songs", "built a big tower", "laughed a lot", "played with a ball", "looked for bugs", "had a picnic" })}.");
        Say($"When the sun went down, {friend.Name} said goodbye. {hero.Name} felt {Pick(GoodFeelings)}.");
    }

    private void Fear(Character hero, Character friend, (string Name, string In) place)
    {
        string scary = Pick(new[] { "a loud noise", "a big shadow", "a dark cave", "a strange sound", "a tall slide", "the deep water" });
        Say($"One night, {hero.Name} heard {scary.Replace("a dark cave", "about a dark cave").Replace("a tall slide", "about a tall slide").Replace("the deep water", "about the deep water")}.");
        Say($"{hero.Name} was {Pick(BadFeelings)}. {Cap(hero.He)} did not want to go {place.In} {place.Name}.");
        Say($"{hero.Name} went to {hero.His} {Pick(Family)}.");
        Quote(hero, "I am scared. What should I do?", "asked");
        Say($"{hero.His.Substring(0, 1).ToUpperInvariant()}{hero.His[1..]} {Pick(Family)} gave {hero.Him} a big hug.");
        Say(_rng.Chance(50) ? "\"You are braver than you think,\" came the answer." : "\"Let us go and look together,\" came the answer.");
        Say($"So {hero.Name} and {friend.Name} went to see. It was only {A(Pick(new[] { "little bird", "old cat", "funny frog", "friendly owl", "small squirrel" }))}!");
        Say($"{hero.Name} laughed. {Cap(hero.He)} was not scared any more.");
    }

    private void Sharing(Character hero, Character friend, string thing, string colour)
    {
        Say($"{hero.Name} had {A(colour)} {thing}. {friend.Name} wanted to play with it too.");
        Quote(friend, $"Can I play with your {thing}, please?", "asked");
        if (_rng.Chance(50))
        {
            Quote(hero, "No, it is mine!");
            Say($"{friend.Name} felt {Pick(BadFeelings)} and walked away. {hero.Name} played alone, but it was not fun.");
            Say($"{hero.Name} thought about it. Then {hero.He} ran to {friend.Name}.");
            Quote(hero, $"I am sorry. Let us play with the {thing} together.");
        }
        else
        {
            Quote(hero, $"Yes, we can share the {thing}!");
        }
        Say($"{hero.Name} and {friend.Name} took turns. They were both very {Pick(GoodFeelings)}.");
    }

    private void Helping(Character hero, Character friend, (string Name, string In) place)
    {
        string trouble = Pick(new[] { "was stuck in a tree", "had a hurt leg", "could not reach the apples", "was lost", "dropped all the eggs", "could not find the way home" });
        Say($"One day, {hero.Name} saw {friend.Name} the {friend.Kind} {place.In} {place.Name}. {friend.Name} {trouble}.");
        Quote(friend, "Help! Can you help me?");
        Say($"{hero.Name} wanted to help. {Cap(hero.He)} thought and thought.");
        Say($"Then {hero.He} had an idea. {Cap(hero.He)} {Pick(new[] { "found a long stick", "called a big bear", "brought a ladder", "got some rope", "asked " + hero.His + " " + Pick(Family) + " for help" })}.");
        Say($"Soon, {friend.Name} was safe.");
        Quote(friend, "Thank you for helping me!");
        Say($"{hero.Name} felt {Pick(GoodFeelings)}. Helping others made {hero.Him} feel good.");
    }

    private void Trip(Character hero, Character friend, (string Name, string In) place, string thing)
    {
        Say($"{hero.Name} and {hero.His} friend {friend.Name} wanted to go on an adventure.");
        Say($"They packed {A(thing)} and some food. Then they walked to {place.Name}.");
        Say($"On the way, they saw {Pick(new[] { "a big river", "many butterflies", "a tall mountain", "a rainbow", "a little house", "a lot of ducks" })}.");
        Quote(friend, _rng.Chance(50) ? "Look at that! It is so pretty!" : "Wow! I have never seen that before!");
        if (_rng.Chance(50))
        {
            Say($"Then it started to rain. {hero.Name} and {friend.Name} were {Pick(BadFeelings)}.");
            Say($"They hid {Pick(Hiding)} until the rain stopped.");
        }
        Say($"When they came home, they told {hero.His} {Pick(Family)} all about it.");
        Quote(hero, "That was the best day ever!");
    }
}
